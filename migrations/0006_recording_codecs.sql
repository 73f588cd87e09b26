-- The codecs of a recording's lesson file (comma-separated, e.g. `h264,opus`): an H.264
-- lesson is recorded into fragmented MP4, VP8/VP9 ones into WebM. NULL for entries made
-- before this column existed (all WebM).
ALTER TABLE recordings ADD COLUMN codecs TEXT;

-- How each stay's media travelled (issue 12): `udp`, or `tcp` where the school's network lets
-- only TCP out (ICE over TCP). NULL for stays recorded before it was kept.
ALTER TABLE attendance_intervals ADD COLUMN transport TEXT;

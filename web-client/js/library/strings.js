// Library page strings (en and zh-CN), on top of the admin page's (sign-in, lesson fields),
// merged into the shared table of ../i18n.js.

import '../admin/strings.js';
import { strings } from '../i18n.js';

const en = {
  libTitle: 'Ketang library',
  libSignInHelp: 'Enter an admin API key, or open the library link you were given.',
  libSearch: 'Search', libSearchHint: 'Title, subject, grade, teacher, school', libAny: 'Any',
  libFrom: 'From', libTo: 'To', libRecoveredOnly: 'Recovered after a crash only',
  libSearchButton: 'Search', libClear: 'Clear', libEmpty: 'No recording matches.', libMore: 'Older recordings',
  libDate: 'Date', libDuration: 'Duration', libSize: 'Size',
  mode_open: 'Open room',
  state_ready: 'In the library', state_recording: 'Recording', state_failed: 'Failed',
  libRecovered: 'recovered', libRecoveredTitle: 'Repaired after the server stopped during the lesson',
  libBack: '‹ All recordings', libDownload: 'Download', libExport: 'Export notes (JSON)',
  libMakeLink: 'Library link for the teacher', libLinkMade: 'Valid until {until}.',
  libNotes: 'Observation notes (听课评课)', libNoteHint: 'A note at this moment of the lesson', libAddNote: 'Add note',
  libNotesMasterOnly: 'Observation notes are kept for master-teacher lessons.',
  libNoNotes: 'No notes yet.', libNoteAdded: 'Note added.',
  libMeta: '{subject} · {grade} · {teacher}, {school} · {mode} · {date} · {duration} · {size}',
  libNotPlayable: 'This recording cannot be played: {why}',
  libStillRecording: 'the lesson is still being recorded.',
  libStopped: 'The recording stopped early: {error}',
  libConfirmDelete: 'Delete “{title}” with its file and notes? This cannot be undone.',
  libDeleted: 'Deleted.', libLinkRefused: 'The library link is not accepted: {message}',
  via_live: 'during the lesson', via_replay: 'replay',
};

const zh = {
  libTitle: '课堂 · 课程资源库',
  libSignInHelp: '请输入管理员 API 密钥，或打开发给您的资源库链接。',
  libSearch: '搜索', libSearchHint: '标题、科目、年级、教师、学校', libAny: '全部',
  libFrom: '起始日期', libTo: '截止日期', libRecoveredOnly: '仅显示崩溃后恢复的录像',
  libSearchButton: '搜索', libClear: '清除', libEmpty: '没有符合条件的录像。', libMore: '更早的录像',
  libDate: '日期', libDuration: '时长', libSize: '大小',
  mode_open: '临时课堂',
  state_ready: '已入库', state_recording: '录制中', state_failed: '失败',
  libRecovered: '已恢复', libRecoveredTitle: '课堂进行中服务器停止，录像已修复',
  libBack: '‹ 全部录像', libDownload: '下载', libExport: '导出评课记录（JSON）',
  libMakeLink: '生成教师资源库链接', libLinkMade: '有效期至 {until}。',
  libNotes: '听课评课', libNoteHint: '在此时刻写下评课意见', libAddNote: '添加评课',
  libNotesMasterOnly: '听课评课仅用于名师课堂。',
  libNoNotes: '暂无评课记录。', libNoteAdded: '评课已添加。',
  libMeta: '{subject} · {grade} · {teacher}，{school} · {mode} · {date} · {duration} · {size}',
  libNotPlayable: '此录像无法播放：{why}',
  libStillRecording: '课程仍在录制中。',
  libStopped: '录制提前停止：{error}',
  libConfirmDelete: '删除“{title}”及其文件和评课记录？此操作无法撤销。',
  libDeleted: '已删除。', libLinkRefused: '资源库链接无效：{message}',
  via_live: '课堂中', via_replay: '回放',
};

Object.assign(strings.en, en);
Object.assign(strings['zh-CN'], zh);

// Localized strings (zh-CN and en) and a tiny translation helper.
// No imports and no DOM access at load time, so the module also loads outside a page.

const STORAGE_KEY = 'ketang.lang';
export const LANGS = ['zh-CN', 'en'];

export const strings = {
  en: {
    appName: 'Ketang',
    langToggle: '中文',
    langToggleTitle: 'Switch language',
    // landing
    landingTitle: 'Ketang — live three-classroom lessons',
    landingLead: 'A teacher in one school teaches her own class and, live, several remote classrooms. Everyone sees and hears each other.',
    landingHowTitle: 'How to join',
    landingHow1: 'Open the room link you were given. It looks like https://…/r/ROOM?t=…',
    landingHow2: 'Allow the camera and microphone when the browser asks (teachers and classrooms).',
    landingHow3: 'Keep the tab open during the lesson. Use “Leave” to end your part.',
    landingPaste: 'Paste a room link',
    landingOpen: 'Open',
    landingBadLink: 'That is not a room link. It should contain /r/ROOM?t=…',
    landingRoles: 'Teachers and classrooms send camera and microphone; observers and viewers only watch.',
    // roles
    role_teacher: 'Teacher', role_classroom: 'Classroom', role_observer: 'Observer', role_viewer: 'Viewer',
    you: 'You',
    participants: 'Participants: {count}',
    // status
    statusSignaling: 'Signaling: {state}',
    statusMedia: 'Media: {state}',
    ws_connecting: 'connecting', ws_open: 'connected', ws_closed: 'closed',
    pc_none: '—', pc_new: 'new', pc_connecting: 'connecting', pc_connected: 'connected',
    pc_disconnected: 'interrupted', pc_failed: 'failed', pc_closed: 'closed',
    // token errors
    errorTitle: 'Cannot open this room',
    tokenExpired: 'This room link has expired. Ask the organizer for a new link.',
    tokenNotYetValid: 'This room link is not valid yet.',
    tokenNotYetValidAt: 'This room link is not valid yet. It becomes valid at {time}.',
    tokenInvalid: 'This room link is not valid (the signature does not match). Ask the organizer for a new link.',
    tokenWrongRoom: 'This link belongs to a different room.',
    tokenMalformed: 'This room link is damaged. Check that you copied all of it.',
    tokenMissing: 'The room link has no access token. Open the full link you were given.',
    tokenRevoked: 'This room link was replaced by a newer one. Ask the organizer for the current link.',
    lessonEnded: 'This lesson has ended.',
    lessonCancelled: 'This lesson was cancelled.',
    scheduleUnavailable: 'The lesson schedule cannot be checked right now. Reload in a moment.',
    serverUnavailable: 'The server could not be reached. Check the network and reload the page.',
    unknownError: 'Something went wrong: {message}',
    reload: 'Reload',
    // media
    camDenied: 'Camera access was denied. Others will not see you; allow the camera in the browser and rejoin.',
    micDenied: 'Microphone access was denied. Others will not hear you; allow the microphone in the browser and rejoin.',
    camMissing: 'No camera was found. You are joining without video.',
    micMissing: 'No microphone was found. You are joining without sound.',
    camBusy: 'The camera is in use by another program.',
    micBusy: 'The microphone is in use by another program.',
    mediaUnsupported: 'This browser cannot capture camera or microphone (the page must be opened over https).',
    mediaOther: 'Could not start the {device}: {message}',
    device_camera: 'camera', device_mic: 'microphone', device_screen: 'screen share',
    receiveOnly: 'You are connected without camera and microphone: you can watch and listen.',
    rejectedTrack: 'The server did not accept your {device}: {reason}',
    enableSound: 'Click to turn on sound',
    // controls
    micMute: 'Mute', micUnmute: 'Unmute', camOff: 'Stop video', camOn: 'Start video',
    micLabel: 'Microphone', camLabel: 'Camera',
    shareScreen: 'Share screen', stopShare: 'Stop sharing',
    leave: 'Leave',
    rejoin: 'Rejoin',
    dismiss: 'Dismiss',
    micIsOff: 'Microphone off', camIsOff: 'Camera off',
    // stage
    waitingTeacher: 'Waiting for the teacher to join…',
    noClassrooms: 'No classrooms have joined yet.',
    connecting: 'Connecting…',
    screenOf: '{name} — screen',
    // end of session
    youLeftTitle: 'You left the lesson',
    youLeft: 'You can rejoin at any time with the same link.',
    endedTitle: 'Disconnected',
    connectionLost: 'The connection to the server was lost.',
    bye_left: 'You left the lesson.',
    bye_roomClosed: 'The lesson has ended: the room was closed.',
    bye_removed: 'You were removed from the room.',
    bye_tokenExpired: 'Your room link has expired.',
    bye_shutdown: 'The server is restarting. Rejoin in a moment.',
    bye_replaced: 'This link was opened somewhere else, so this page was disconnected.',
    bye_slowConsumer: 'The connection was too slow to follow the lesson. Rejoin to continue.',
    bye_linkRevoked: 'This lesson link was replaced by a new one. Ask the organizer for the current link.',
    bye_mediaFailed: 'The audio/video connection failed. Check the network and rejoin.',
    bye_unknown: 'Disconnected by the server: {message}',
    // signaling errors
    err_badMessage: 'The server did not understand a message.',
    err_messageTooLarge: 'A message was too large for the server.',
    err_rateLimited: 'Too many messages; retrying.',
    err_invalidSdp: 'The server could not read the media description.',
    err_glare: 'Media renegotiation collided; retrying.',
    err_noPendingOffer: 'The server had no pending offer.',
    err_forbidden: 'Your role is not allowed to do that.',
    err_notJoined: 'Not joined yet.',
    err_internal: 'The server had an internal error.',
    err_unknown: 'Server error: {message}',
    participantJoined: '{name} joined.',
    participantLeft: '{name} left.',
    codecMismatch: 'This video is {codec}, which this browser cannot decode. Ask the sender to use VP8, or open the lesson in a browser that plays {codec}.',
    viewerCodecMismatch: '{name} cannot see your camera: its browser cannot decode {codec}.',
    // stats overlay (school IT staff)
    statsToggle: 'Stats', statsToggleTitle: 'Show connection statistics',
    statsTitle: 'Connection statistics', statsClose: 'Close',
    statsServer: 'Server: estimate {estimate}, allocated {allocated}, probing {probe}, downlink cap {down}, uplink cap {up}, media over {transport}',
    statsServerNone: 'Server: no numbers yet',
    statsClient: 'Browser: available uplink {out}, round trip {rtt}, {local} → {remote}',
    statsSending: 'Sending', statsReceiving: 'Receiving',
    statsColSource: 'Source', statsColLayer: 'Layer', statsColFrom: 'From', statsColResolution: 'Resolution',
    statsColFps: 'fps', statsColBitrate: 'Bitrate', statsColTarget: 'Encoder target', statsColOn: 'Sending',
    statsColRequested: 'Server wants', statsColServerBps: 'Server measured', statsColLimit: 'Limited by',
    statsColServerLayer: 'Server layer (target / current of n)', statsColLost: 'Lost',
    statsYes: 'yes', statsNo: 'no (paused)', statsNone: '—',
  },
  'zh-CN': {
    appName: '课堂 Ketang',
    langToggle: 'English',
    langToggleTitle: '切换语言',
    landingTitle: '课堂 Ketang —— 三个课堂直播互动教学',
    landingLead: '城区学校的老师给本班上课，同时实时连线多个乡村课堂，各方可以互相看到、听到。',
    landingHowTitle: '如何进入课堂',
    landingHow1: '打开收到的课堂链接，格式类似 https://…/r/房间号?t=…',
    landingHow2: '浏览器询问时，请允许使用摄像头和麦克风（老师和课堂端）。',
    landingHow3: '上课期间请保持页面打开。点击“离开”结束。',
    landingPaste: '粘贴课堂链接',
    landingOpen: '进入',
    landingBadLink: '这不是课堂链接，链接中应包含 /r/房间号?t=…',
    landingRoles: '老师和课堂端发送摄像头和麦克风；观摩和观看端只接收。',
    role_teacher: '老师', role_classroom: '课堂', role_observer: '观摩', role_viewer: '观看',
    you: '我',
    participants: '参与者：{count}',
    statusSignaling: '信令：{state}',
    statusMedia: '媒体：{state}',
    ws_connecting: '连接中', ws_open: '已连接', ws_closed: '已断开',
    pc_none: '—', pc_new: '未开始', pc_connecting: '连接中', pc_connected: '已连接',
    pc_disconnected: '中断', pc_failed: '失败', pc_closed: '已关闭',
    errorTitle: '无法进入课堂',
    tokenExpired: '课堂链接已过期，请向组织者索取新链接。',
    tokenNotYetValid: '课堂链接尚未生效。',
    tokenNotYetValidAt: '课堂链接尚未生效，将于 {time} 生效。',
    tokenInvalid: '课堂链接无效（签名不匹配），请向组织者索取新链接。',
    tokenWrongRoom: '此链接属于另一个课堂。',
    tokenMalformed: '课堂链接已损坏，请检查是否完整复制。',
    tokenMissing: '课堂链接缺少访问令牌，请打开完整的链接。',
    tokenRevoked: '此课堂链接已被新链接取代，请向组织者索取最新链接。',
    lessonEnded: '本节课已结束。',
    lessonCancelled: '本节课已取消。',
    scheduleUnavailable: '暂时无法核对课表，请稍后刷新。',
    serverUnavailable: '无法连接服务器，请检查网络后刷新页面。',
    unknownError: '出现错误：{message}',
    reload: '刷新',
    camDenied: '摄像头权限被拒绝，其他人将看不到你。请在浏览器中允许摄像头后重新进入。',
    micDenied: '麦克风权限被拒绝，其他人将听不到你。请在浏览器中允许麦克风后重新进入。',
    camMissing: '未找到摄像头，将以无视频方式进入。',
    micMissing: '未找到麦克风，将以无声音方式进入。',
    camBusy: '摄像头正被其他程序占用。',
    micBusy: '麦克风正被其他程序占用。',
    mediaUnsupported: '此浏览器无法使用摄像头或麦克风（页面需通过 https 打开）。',
    mediaOther: '无法启动{device}：{message}',
    device_camera: '摄像头', device_mic: '麦克风', device_screen: '屏幕共享',
    receiveOnly: '你已在无摄像头和麦克风的情况下连接，可以观看和收听。',
    rejectedTrack: '服务器未接受你的{device}：{reason}',
    enableSound: '点击开启声音',
    micMute: '静音', micUnmute: '取消静音', camOff: '关闭视频', camOn: '开启视频',
    micLabel: '麦克风', camLabel: '摄像头',
    shareScreen: '共享屏幕', stopShare: '停止共享',
    leave: '离开',
    rejoin: '重新进入',
    dismiss: '关闭',
    micIsOff: '麦克风已关闭', camIsOff: '摄像头已关闭',
    waitingTeacher: '等待老师进入…',
    noClassrooms: '还没有课堂加入。',
    connecting: '正在连接…',
    screenOf: '{name} —— 屏幕',
    youLeftTitle: '你已离开课堂',
    youLeft: '可以随时使用同一链接重新进入。',
    endedTitle: '连接已断开',
    connectionLost: '与服务器的连接已中断。',
    bye_left: '你已离开课堂。',
    bye_roomClosed: '本节课已结束，课堂已关闭。',
    bye_removed: '你已被移出课堂。',
    bye_tokenExpired: '你的课堂链接已过期。',
    bye_shutdown: '服务器正在重启，请稍后重新进入。',
    bye_replaced: '此链接已在其他地方打开，本页面已断开。',
    bye_slowConsumer: '网络太慢，跟不上课堂，请重新进入。',
    bye_linkRevoked: '此课堂链接已被新链接取代，请向组织者索取最新链接。',
    bye_mediaFailed: '音视频连接失败，请检查网络后重新进入。',
    bye_unknown: '服务器断开了连接：{message}',
    err_badMessage: '服务器无法识别一条消息。',
    err_messageTooLarge: '消息过大，服务器拒绝接收。',
    err_rateLimited: '消息过于频繁，正在重试。',
    err_invalidSdp: '服务器无法解析媒体描述。',
    err_glare: '媒体协商冲突，正在重试。',
    err_noPendingOffer: '服务器没有待处理的协商请求。',
    err_forbidden: '你的角色无权执行此操作。',
    err_notJoined: '尚未加入课堂。',
    err_internal: '服务器内部错误。',
    err_unknown: '服务器错误：{message}',
    participantJoined: '{name} 已加入。',
    participantLeft: '{name} 已离开。',
    codecMismatch: '该视频为 {codec} 编码，本浏览器无法解码。请发送方改用 VP8，或换用能播放 {codec} 的浏览器。',
    viewerCodecMismatch: '{name} 看不到你的摄像头：其浏览器无法解码 {codec}。',
    statsToggle: '统计', statsToggleTitle: '显示连接统计',
    statsTitle: '连接统计', statsClose: '关闭',
    statsServer: '服务器：估计带宽 {estimate}，已分配 {allocated}，探测 {probe}，下行上限 {down}，上行上限 {up}，媒体经 {transport}',
    statsServerNone: '服务器：暂无数据',
    statsClient: '浏览器：可用上行 {out}，往返时延 {rtt}，{local} → {remote}',
    statsSending: '发送', statsReceiving: '接收',
    statsColSource: '来源', statsColLayer: '层', statsColFrom: '来自', statsColResolution: '分辨率',
    statsColFps: '帧率', statsColBitrate: '码率', statsColTarget: '编码目标', statsColOn: '发送中',
    statsColRequested: '服务器需要', statsColServerBps: '服务器测得', statsColLimit: '受限于',
    statsColServerLayer: '服务器层（目标 / 当前 / 共 n）', statsColLost: '丢包',
    statsYes: '是', statsNo: '否（已暂停）', statsNone: '—',
  },
};

let current = null;
const listeners = new Set();

function storage() {
  try { return typeof localStorage !== 'undefined' ? localStorage : null; } catch { return null; }
}

/** The language from localStorage, else from navigator.language (zh* → zh-CN, else en). */
export function detectLang() {
  const saved = storage()?.getItem(STORAGE_KEY);
  if (saved && LANGS.includes(saved)) return saved;
  const nav = typeof navigator !== 'undefined' ? (navigator.languages?.[0] || navigator.language || '') : '';
  return nav.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

export function getLang() {
  if (!current) current = detectLang();
  return current;
}

/** Switch language, persist it and notify listeners. */
export function setLang(lang) {
  if (!LANGS.includes(lang)) return;
  current = lang;
  storage()?.setItem(STORAGE_KEY, lang);
  for (const fn of listeners) fn(lang);
}

export function toggleLang() {
  setLang(getLang() === 'en' ? 'zh-CN' : 'en');
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Whether a key has a translation (used to pick specific vs. generic messages). */
export function has(key) {
  return key in strings.en;
}

/** Translate `key`, substituting `{param}` placeholders. Unknown keys come back as the key. */
export function t(key, params = {}) {
  const table = strings[getLang()] || strings.en;
  const template = table[key] ?? strings.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** Fill every `[data-i18n]` element under `root` with its translation (textContent only). */
export function applyI18n(root) {
  root.documentElement?.setAttribute('lang', getLang());
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
}

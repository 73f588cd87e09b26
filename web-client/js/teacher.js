// The teacher portal: after signing in with the school's identity provider, the teacher sees
// her own upcoming lessons and opens her room link from here (no admin needed).

const $ = (id) => document.getElementById(id);

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  return td;
}

async function load() {
  let res;
  try {
    res = await fetch('/teacher/api/me', { headers: { Accept: 'application/json' } });
  } catch {
    return;
  }
  if (res.status === 401) {
    const body = await res.json().catch(() => ({}));
    $('signin-panel').hidden = false;
    $('signin-link').hidden = !body.signIn;
    window.ketangTeacher = { signedIn: false };
    return;
  }
  if (!res.ok) return;
  const me = await res.json();
  $('teacher-name').textContent = me.name;
  $('sign-out').hidden = false;
  $('lessons-panel').hidden = false;
  const body = $('lessons');
  body.replaceChildren();
  for (const l of me.lessons) {
    const tr = document.createElement('tr');
    tr.dataset.lesson = l.lessonId;
    tr.append(cell(l.title), cell(l.start), cell(l.end));
    const td = document.createElement('td');
    if (l.url) {
      const a = document.createElement('a');
      a.href = l.url;
      a.textContent = '进入课堂 Enter';
      a.className = 'ctl primary';
      td.append(a);
    }
    tr.append(td);
    body.append(tr);
  }
  $('no-lessons').hidden = me.lessons.length > 0;
  window.ketangTeacher = { signedIn: true, lessons: me.lessons.map((l) => l.lessonId) };
}

$('sign-out').addEventListener('click', async () => {
  await fetch('/teacher/logout', { method: 'POST' }).catch(() => {});
  location.reload();
});

load();

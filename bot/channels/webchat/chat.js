// The web chat (bot/channels/web.py): one conversation, message by message. Everything a
// child or tala wrote is set as text, never as markup. No build step, nothing from elsewhere.
"use strict";
(function () {
  const base = location.pathname.replace(/\/+$/, "");
  const log = document.getElementById("log");
  const buttons = document.getElementById("buttons");
  const offline = document.getElementById("offline");
  const form = document.getElementById("typed");
  const input = document.getElementById("text");
  let labels = {};
  let aloud = false;
  let audio = null;

  function newId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function bubble(text, who) {
    const li = document.createElement("li");
    li.className = who;
    li.textContent = text;
    log.appendChild(li);
    li.scrollIntoView({block: "end"});
    return li;
  }

  function relabel(data) {
    document.documentElement.lang = data.lang;
    document.documentElement.dir = data.dir;
    labels = data.labels;
    document.title = labels.title;
    document.querySelector("h1").textContent = labels.title;
    const named = {"/back": "back", "/pause": "pause", "/answers": "answers", "/stop": "stop",
                   "/language": "language"};
    document.querySelectorAll("[data-command]").forEach((b) => {
      b.textContent = labels[named[b.dataset.command]];
    });
    document.getElementById("bigger").textContent = labels.bigger;
    form.querySelector("button").textContent = labels.send;
    form.querySelector("label").textContent = labels.type_here;
    input.placeholder = labels.type_here;
    offline.textContent = labels.offline;
  }

  function button(label, onPress, extra) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (extra) b.className = extra;
    b.addEventListener("click", onPress);
    buttons.appendChild(b);
    return b;
  }

  function showButtons(m) {
    buttons.replaceChildren();
    buttons.dataset.question = m.question;
    if (m.multi) {
      const picked = new Set();
      m.choices.forEach((c) => {
        const b = button(c.label, () => {
          if (picked.has(c.key)) picked.delete(c.key); else picked.add(c.key);
          b.setAttribute("aria-pressed", String(picked.has(c.key)));
        }, "choice");
        b.setAttribute("aria-pressed", "false");
      });
      button(labels.done, () => {
        if (picked.size) press(m.question, [...picked].join(" "), labels.done);
      }, "done");
    } else if (m.choices.length) {
      m.choices.forEach((c) => button((c.face ? c.face + " " : "") + c.label,
                                      () => press(m.question, c.key, c.label), "choice"));
    } else if (m.scale) {
      for (let n = m.scale[0]; n <= m.scale[1]; n++) {
        button(String(n), () => press(m.question, String(n), String(n)), "number");
      }
    }
    if (aloud && m.question !== "_language") {
      button("🔊 " + labels.aloud, () => readAloud(m.question), "aloud");
    }
  }

  function readAloud(question) {
    if (audio) audio.pause();
    audio = new Audio(base + "/aloud?q=" + encodeURIComponent(question));
    audio.addEventListener("playing", () => { document.body.dataset.played = question; });
    audio.addEventListener("error", async () => {
      try {
        const r = await fetch(base + "/aloud?q=" + encodeURIComponent(question));
        if (!r.ok) bubble((await r.json()).text, "tala");
      } catch (e) { offline.hidden = false; }
    });
    audio.play().catch(() => {});
  }

  function show(data) {
    if (data.closed) {
      buttons.replaceChildren();
      bubble(data.closed, "tala");
      form.hidden = true;
      document.getElementById("tools").hidden = true;
      return;
    }
    if (data.lang !== document.documentElement.lang || !labels.send) relabel(data);
    aloud = data.aloud;
    let last = null;
    data.messages.forEach((m) => {
      const li = bubble(m.text, "tala");
      if (m.hint) {
        const hint = document.createElement("span");
        hint.className = "hint";
        hint.textContent = m.hint;
        li.appendChild(hint);
      }
      if (m.question) last = m;
    });
    if (last) showButtons(last); else if (data.messages.length) buttons.replaceChildren();
    document.body.dataset.ready = String(Date.now());
  }

  // One message to tala, with its id: sent again with the same id after a network failure,
  // so it counts once; what was typed stays on screen until tala has it.
  async function send(path, payload, shown) {
    payload.id = newId();
    if (shown) bubble(shown, "child");
    for (let wait = 1000; ; wait = Math.min(wait * 2, 15000)) {
      try {
        const r = await fetch(base + path, {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(payload), credentials: "same-origin"});
        if (r.status >= 500) throw new Error("server " + r.status);
        offline.hidden = true;
        show(await r.json());
        return;
      } catch (e) {
        offline.hidden = false;
        await new Promise((done) => setTimeout(done, wait));
      }
    }
  }

  function press(question, answer, shown) {
    buttons.replaceChildren();
    send("/say", {question: question, answer: answer}, shown);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send("/say", {text: text}, text);
  });
  document.querySelectorAll("[data-command]").forEach((b) => {
    b.addEventListener("click", () => send("/say", {text: b.dataset.command}, b.textContent));
  });
  const bigger = document.getElementById("bigger");
  function setBig(on) {
    document.body.classList.toggle("big", on);
    bigger.setAttribute("aria-pressed", String(on));
    try { localStorage.setItem("tala-big", on ? "1" : ""); } catch (e) { /* private mode */ }
  }
  bigger.addEventListener("click", () => setBig(!document.body.classList.contains("big")));
  try { setBig(localStorage.getItem("tala-big") === "1"); } catch (e) { /* private mode */ }
  send("/open", {}, null);
})();

// codepipeline-local console: live pages (server-sent events from the event log), the buttons
// that call CodePipeline's operations, and build logs that follow a running build.
(() => {
  "use strict";
  const token = document.querySelector('meta[name="console-token"]').content;
  const live = document.getElementById("live");
  const message = document.getElementById("message");
  const ask = document.getElementById("ask");

  const say = (text) => { message.textContent = text; };

  // Fetches the page's content again; while a dialog is open, waits for it to close.
  let busy = false, again = false;
  async function refresh() {
    if (busy || ask.open) { again = true; return; }
    busy = true;
    try {
      const answer = await fetch(location.href, { headers: { "X-Console-Fragment": "1" } });
      if (answer.ok) {
        const text = await answer.text();
        const focused = live.contains(document.activeElement) ? document.activeElement : null;
        const key = focused && mark(focused);
        live.innerHTML = text;
        // A keyboard user keeps their place: the same control, drawn again, takes the focus.
        if (key) {
          const same = [...live.querySelectorAll(focused.tagName)].find((el) => mark(el) === key);
          if (same) same.focus();
        }
        localTimes();
        follow();
      }
    } catch (e) {
      // The server went away; the event stream reconnects by itself.
    } finally {
      busy = false;
      if (again) { again = false; setTimeout(refresh, 150); }
    }
  }

  // Times are drawn in UTC; the browser shows them in its own zone (UTC stays in the title).
  const day = new Intl.DateTimeFormat("sv-SE", {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const zone = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" });
  function localTimes() {
    for (const t of live.querySelectorAll("time[datetime]")) {
      const at = new Date(t.getAttribute("datetime"));
      if (isNaN(at)) continue;
      const name = zone.formatToParts(at).find((p) => p.type === "timeZoneName");
      t.title = t.textContent;
      t.textContent = day.format(at) + (name ? " " + name.value : "");
    }
  }
  localTimes();

  // What tells a control apart from the others when the page's content is drawn again.
  function mark(el) {
    if (el.id) return "#" + el.id;
    return [el.tagName, el.dataset.op || "", el.dataset.input || "", el.getAttribute("href") || "", el.textContent.trim()].join("|");
  }

  // The page follows the log: a change to a stream it shows brings its content again.
  // The stream starts where the page was made, so no change in between is missed.
  const position = document.querySelector('meta[name="console-position"]').content;
  const events = new EventSource("/_console/events?from=" + encodeURIComponent(position));
  events.addEventListener("change", (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch (err) { return; }
    const watched = live.querySelector("[data-watch]");
    const key = watched && watched.dataset.watch;
    if (!key || data.streams.some((s) => s.includes(key))) refresh();
  });

  async function call(operation, input) {
    // The region of what the page shows (a pipeline's, when the address names none).
    const shown = live.querySelector("[data-region]");
    const region = (shown && shown.dataset.region) || new URLSearchParams(location.search).get("region") || "";
    const answer = await fetch("/_console/api/" + operation + (region ? "?region=" + encodeURIComponent(region) : ""), {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Console-Token": token },
      body: JSON.stringify(input),
    });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error((body.__type || answer.status) + ": " + (body.message || ""));
    return body;
  }

  function setPath(object, path, value) {
    const keys = path.split(".");
    let at = object;
    for (const k of keys.slice(0, -1)) { at[k] = at[k] || {}; at = at[k]; }
    at[keys[keys.length - 1]] = value;
  }

  async function run(operation, input) {
    say("");
    try {
      await call(operation, input);
      refresh();
    } catch (e) {
      say(e.message);
    }
  }

  // A button asks first (a dialog with a text and choices) when it says so.
  let opener = null;
  function open(button) {
    opener = button;
    const input = JSON.parse(button.dataset.input || "{}");
    document.getElementById("ask-title").textContent = button.dataset.ask;
    const label = document.getElementById("ask-label");
    const text = document.getElementById("ask-text");
    const field = button.dataset.text;
    label.textContent = button.dataset.textLabel || "";
    label.hidden = text.hidden = !field;
    text.value = "";
    text.required = button.dataset.required === "true";
    const choices = document.getElementById("ask-choices");
    choices.replaceChildren();
    for (const choice of JSON.parse(button.dataset.choices || "[]")) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = choice.label;
      b.addEventListener("click", () => {
        if (field && text.required && !text.value.trim()) { text.focus(); say(label.textContent + " is required."); return; }
        const full = JSON.parse(JSON.stringify(input));
        for (const [path, value] of Object.entries(choice.set || {})) setPath(full, path, value);
        if (field && text.value.trim()) setPath(full, field, text.value.trim());
        close();
        run(button.dataset.op, full);
      });
      choices.appendChild(b);
    }
    ask.showModal();
    (field ? text : choices.querySelector("button")).focus();
  }
  function close() {
    ask.close();
    if (opener && document.body.contains(opener)) opener.focus();
    if (again) { again = false; refresh(); }
  }
  document.getElementById("ask-cancel").addEventListener("click", close);
  ask.addEventListener("close", () => { if (again) { again = false; refresh(); } });

  document.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-op]");
    if (!button) return;
    if (button.dataset.ask) open(button);
    else run(button.dataset.op, JSON.parse(button.dataset.input || "{}"));
  });

  // A running build's log grows on the page. The page may be drawn again meanwhile (a build's
  // phases change it): each round reads from the log element the page shows now.
  let following = false;
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));
  async function follow() {
    if (following) return;
    following = true;
    try {
      for (;;) {
        const log = document.getElementById("log");
        if (!log || log.dataset.complete === "true") break;
        const url = "/_codepipeline_local/builds/log?id=" + encodeURIComponent(log.dataset.build) + "&offset=" + log.dataset.offset;
        let part;
        try {
          const answer = await fetch(url);
          if (answer.status === 404) break;
          part = answer.ok ? await answer.json() : null;
        } catch (e) {
          part = null; // The server went away for a moment: ask again.
        }
        // Drawn again while the answer came: the new element says where to read from.
        if (!part || document.getElementById("log") !== log) {
          await pause(part ? 0 : 1000);
          continue;
        }
        if (part.text) log.append(part.text);
        log.dataset.offset = part.nextOffset;
        if (part.complete) {
          log.dataset.complete = "true";
          document.getElementById("build-state").textContent = "Complete.";
          break;
        }
        await pause(500);
      }
    } finally {
      following = false;
    }
  }
  follow();
})();

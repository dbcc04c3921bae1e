// Quorum's annotator workspace: keyboard-first labelling, entity spans with mouse or
// keyboard, and the next item held ahead so that Enter shows it at once.
//
// The server renders every task as a plain form (it works without this script). Here:
// 1. Enter submits the form in the background and swaps in the task held in
//    <template id="ahead">; the reply brings the task after that.
// 2. Answers are sent one after the other. One that does not arrive (the network drops,
//    the server answers 5xx) is kept in the page: a message names it and offers Retry
//    (focused, so Enter retries), and the answers after it wait in order. A retry sends
//    the same submission id, which the server counts once however often it arrives; the
//    browser coming back online retries too.
// 3. An answer the server refuses is reported with a link back to its item.
// 4. Keys: a label's key chooses it, Enter submits, Shift+Enter skips, Shift+A accepts a
//    suggestion the model is sure enough of. Tab moves focus as on any page, and Enter on
//    another control (a link, the instructions' toggle, a button other than Submit) does
//    what that control does. A key with no meaning here lists the keys that have one.
(function () {
  "use strict";

  const workspace = document.getElementById("workspace");
  if (!workspace) return;
  const editMode = workspace.dataset.mode === "edit";
  const current = document.getElementById("current");
  const ahead = document.getElementById("ahead");
  const toast = document.getElementById("toast");
  const TOKEN = /[\p{L}\p{N}_]+(?:['’.\-&][\p{L}\p{N}_]+)*|[^\s\p{L}\p{N}_]/gu;
  const EDGE_JUNK = /[\s.,;:!?"'“”‘’()[\]{}]/;

  let task = null; // the controller of the task on screen
  let queue = Promise.resolve(); // answers go to the server in order
  let waiting = false; // the screen waits for the next task to arrive
  let unsent = 0; // answers given but not yet acknowledged by the server
  let resume = null; // set while an answer that did not arrive waits for a retry

  const csrfToken = () => {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  };

  function showToast(html, kind) {
    if (!toast) return;
    toast.className = "toast " + (kind || "error");
    toast.innerHTML = html;
    toast.hidden = false;
    clearTimeout(showToast.timer);
    if (kind === "info") showToast.timer = setTimeout(() => (toast.hidden = true), 2500);
  }

  // The notice of an answer that did not arrive has its own box, so that passing hints
  // in the toast never hide it.
  const notice = document.createElement("div");
  notice.className = "toast error unsent";
  notice.setAttribute("role", "alert");
  notice.hidden = true;
  if (toast) toast.after(notice);

  function offerRetry(summary, why) {
    return new Promise((resolve) => {
      const text = document.createElement("span");
      const waitingToo = unsent > 1 ? ` The ${unsent - 1} answer${unsent > 2 ? "s" : ""} after it wait${unsent > 2 ? "" : "s"} in order.` : "";
      text.textContent = `Your answer (${summary}) is not saved yet: ${why}. It is kept here; retry when the connection is back.${waitingToo} `;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-sm retry-button";
      button.textContent = "Retry";
      resume = () => {
        resume = null;
        notice.hidden = true;
        if (task && task.textEl) task.textEl.focus({ preventScroll: true });
        resolve();
      };
      button.addEventListener("click", () => resume && resume());
      notice.replaceChildren(text, button);
      notice.hidden = false;
      button.focus();
    });
  }
  window.addEventListener("online", () => resume && resume());

  function escapeHtml(text) {
    const div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML;
  }

  // ---- one task on screen -------------------------------------------------------

  function Task(form) {
    this.form = form;
    this.kind = form.dataset.kind;
    this.allowOverlap = form.dataset.allowOverlap === "1";
    this.startedAt = performance.now();
    this.textEl = form.querySelector(".task-text");
    this.inputs = Array.from(form.querySelectorAll("input[data-key]"));
    this.byKey = {};
    this.inputs.forEach((input) => {
      if (input.dataset.key) this.byKey[input.dataset.key] = input;
    });
    if (this.kind === "spans") this.setUpSpans();
  }

  Task.prototype.labelFor = function (id) {
    const input = this.inputs.find((each) => Number(each.value) === Number(id));
    return input ? { id: Number(input.value), name: input.dataset.name, color: input.dataset.color } : null;
  };

  Task.prototype.valid = function () {
    if (this.kind === "spans") return true; // no entities is an answer too
    return this.inputs.some((input) => input.checked);
  };

  Task.prototype.summary = function () {
    if (this.kind === "spans") return this.spans.length + " span" + (this.spans.length === 1 ? "" : "s");
    return this.inputs.filter((i) => i.checked).map((i) => i.dataset.name).join(", ");
  };

  Task.prototype.prepare = function () {
    const duration = this.form.querySelector("input[name=duration_ms]");
    if (duration) duration.value = String(Math.round(performance.now() - this.startedAt));
    if (this.kind === "spans") this.form.querySelector("input[name=spans]").value = JSON.stringify(this.spans);
  };

  Task.prototype.pressLabel = function (input) {
    if (this.kind === "spans") return this.applyLabel(Number(input.value));
    if (this.kind === "multi_label") input.checked = !input.checked;
    else input.checked = true;
  };

  Task.prototype.clear = function () {
    if (this.kind === "spans") {
      if (this.pending || this.chosen !== null) {
        this.pending = null;
        this.chosen = null;
        this.render();
        return true;
      }
      return false;
    }
    const had = this.inputs.some((input) => input.checked);
    this.inputs.forEach((input) => (input.checked = false));
    return had;
  };

  // Only a suggestion at or above the project's floor may be taken whole (data-accept="1");
  // a less sure one is a hint. Returns whether it was taken.
  Task.prototype.acceptSuggestion = function () {
    const box = this.form.querySelector(".suggestion");
    if (!box || box.dataset.accept !== "1") return false;
    if (this.kind === "spans") {
      this.suggested.forEach((span) => {
        if (!this.spans.some((s) => s.start < span.end && span.start < s.end)) this.spans.push({ ...span });
      });
      this.render();
    } else {
      const ids = box.dataset.labels.trim().split(/\s+/).map(Number);
      this.inputs.forEach((input) => {
        if (ids.includes(Number(input.value))) input.checked = true;
        else if (this.kind === "single_label") input.checked = false;
      });
    }
    box.classList.add("accepted");
    return true;
  };

  // ---- entity spans ----------------------------------------------------------------

  Task.prototype.setUpSpans = function () {
    const self = this;
    // The exact text (with any \r\n) comes as JSON: HTML parsing would normalise it.
    const raw = this.form.querySelector(".item-json script");
    this.text = raw ? JSON.parse(raw.textContent) : this.textEl.textContent;
    const existing = document.getElementById("existing-spans");
    const field = this.form.querySelector("input[name=spans]");
    let spans = [];
    try {
      spans = existing ? JSON.parse(existing.textContent) : JSON.parse(field.value || "[]");
    } catch (error) {
      spans = [];
    }
    this.spans = spans.map((s) => ({ start: s.start, end: s.end, label_id: s.label_id }));
    const suggested = this.form.querySelector(".suggested-spans script");
    this.suggested = suggested ? JSON.parse(suggested.textContent) : [];
    this.tokens = Array.from(this.text.matchAll(TOKEN), (m) => ({ start: m.index, end: m.index + m[0].length }));
    this.cursor = -1;
    this.anchor = -1;
    this.pending = null; // {start, end} chosen but not labelled yet
    this.chosen = null; // index of a span clicked for relabelling or removal
    this.inputs.forEach((input) => {
      input.addEventListener("click", (event) => {
        event.preventDefault();
        self.applyLabel(Number(input.value));
      });
    });
    this.textEl.addEventListener("mouseup", () => self.fromMouse());
    this.textEl.addEventListener("click", (event) => {
      const mark = event.target.closest("[data-span]");
      if (mark && window.getSelection().isCollapsed) {
        self.chosen = Number(mark.dataset.span);
        self.pending = null;
        self.render();
      }
    });
    this.render();
  };

  Task.prototype.offsetOf = function (node, offset) {
    const element = node.nodeType === Node.TEXT_NODE ? node.parentElement : node;
    const segment = element.closest("[data-start]");
    if (segment && this.textEl.contains(segment)) {
      if (node.nodeType === Node.TEXT_NODE) return Number(segment.dataset.start) + offset;
      return Number(segment.dataset.start) + (offset > 0 ? segment.textContent.length : 0);
    }
    const tag = element.closest(".tag");
    if (tag) return Number(tag.dataset.end);
    return offset === 0 ? 0 : this.text.length;
  };

  Task.prototype.snap = function (start, end) {
    const inside = this.tokens.filter((t) => t.start < end && start < t.end);
    if (!inside.length) return null;
    let s = inside[0].start;
    let e = inside[inside.length - 1].end;
    while (s < e && EDGE_JUNK.test(this.text[s])) s += 1;
    while (e > s && EDGE_JUNK.test(this.text[e - 1])) e -= 1;
    return e > s ? { start: s, end: e } : null;
  };

  Task.prototype.fromMouse = function () {
    const selection = window.getSelection();
    if (!selection || selection.isCollapsed || !this.textEl.contains(selection.anchorNode)) return;
    const a = this.offsetOf(selection.anchorNode, selection.anchorOffset);
    const b = this.offsetOf(selection.focusNode, selection.focusOffset);
    this.pending = this.snap(Math.min(a, b), Math.max(a, b));
    this.chosen = null;
    selection.removeAllRanges();
    if (this.pending) {
      this.anchor = this.tokens.findIndex((t) => t.start >= this.pending.start);
      this.cursor = this.tokens.findIndex((t) => t.end >= this.pending.end);
    }
    this.render();
  };

  Task.prototype.moveCursor = function (step, extend) {
    if (!this.tokens.length) return;
    this.cursor = Math.max(0, Math.min(this.tokens.length - 1, this.cursor + step));
    if (!extend || this.anchor < 0) this.anchor = this.cursor;
    const first = Math.min(this.anchor, this.cursor);
    const last = Math.max(this.anchor, this.cursor);
    this.pending = { start: this.tokens[first].start, end: this.tokens[last].end };
    this.chosen = null;
    this.render();
  };

  Task.prototype.applyLabel = function (labelId) {
    if (this.chosen !== null) {
      this.spans[this.chosen].label_id = labelId;
    } else if (this.pending) {
      const span = { start: this.pending.start, end: this.pending.end, label_id: labelId };
      const clashes = this.spans.filter((s) => s.start < span.end && span.start < s.end);
      if (clashes.length && !this.allowOverlap) {
        this.spans = this.spans.filter((s) => !clashes.includes(s));
        showToast("The new span replaced the span it overlapped (spans may not overlap here).", "info");
      }
      this.spans.push(span);
      this.spans.sort((x, y) => x.start - y.start || x.end - y.end);
      this.pending = null;
    } else {
      showToast("Select some words first (mouse, or ← → with Shift).", "info");
      return;
    }
    this.chosen = null;
    this.render();
  };

  Task.prototype.removeChosen = function () {
    if (this.chosen === null) return false;
    this.spans.splice(this.chosen, 1);
    this.chosen = null;
    this.render();
    return true;
  };

  Task.prototype.render = function () {
    // Cut the text at every span, suggestion and selection boundary; each piece knows
    // which spans cover it. Pieces carry their offset so selections map back exactly.
    const cuts = new Set([0, this.text.length]);
    const marks = this.spans.map((s, i) => ({ ...s, index: i }));
    const all = marks.concat(this.suggested.map((s) => ({ ...s, suggested: true })));
    all.forEach((s) => {
      cuts.add(s.start);
      cuts.add(s.end);
    });
    if (this.pending) {
      cuts.add(this.pending.start);
      cuts.add(this.pending.end);
    }
    const points = Array.from(cuts).sort((a, b) => a - b);
    const html = [];
    for (let i = 0; i < points.length - 1; i += 1) {
      const start = points[i];
      const end = points[i + 1];
      const piece = escapeHtml(this.text.slice(start, end));
      const covering = marks.filter((s) => s.start <= start && end <= s.end);
      const hinted = this.suggested.some((s) => s.start <= start && end <= s.end);
      const pending = this.pending && this.pending.start <= start && end <= this.pending.end;
      const classes = ["seg"];
      if (pending) classes.push("pending");
      if (hinted && !covering.length) classes.push("hint");
      if (covering.length) {
        const top = covering[covering.length - 1];
        const label = this.labelFor(top.label_id) || { color: "#999", name: "?" };
        if (this.chosen === top.index) classes.push("chosen");
        if (covering.length > 1) classes.push("stacked");
        html.push(
          `<mark class="span-mark ${classes.join(" ")}" data-start="${start}" data-span="${top.index}" style="--chip:${label.color}">${piece}</mark>`
        );
      } else {
        html.push(`<span class="${classes.join(" ")}" data-start="${start}">${piece}</span>`);
      }
      marks
        .filter((s) => s.end === end)
        .forEach((s) => {
          const label = this.labelFor(s.label_id);
          if (label)
            html.push(`<sup class="tag" data-end="${end}" style="--chip:${label.color}" contenteditable="false">${escapeHtml(label.name)}</sup>`);
        });
    }
    this.textEl.innerHTML = html.join("");
    const count = this.form.querySelector(".span-count");
    if (count) count.textContent = String(this.spans.length);
  };

  // ---- moving between tasks ------------------------------------------------------------

  function mount() {
    const form = current.querySelector("form.task");
    task = form ? new Task(form) : null;
    if (task) {
      const mounted = task;
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (event.submitter && event.submitter.classList.contains("feedback-button")) {
          sendFeedback(form);
          return;
        }
        const skip = event.submitter && event.submitter.classList.contains("skip-button");
        submit(skip, event.submitter);
      });
      const accept = form.querySelector(".accept-suggestion");
      if (accept) accept.addEventListener("click", () => mounted.acceptSuggestion());
      if (task.textEl) task.textEl.focus({ preventScroll: true });
      window.scrollTo({ top: 0 });
    }
  }

  function held() {
    return Array.from(document.querySelectorAll("#current form.task"))
      .concat(ahead ? Array.from(ahead.content.querySelectorAll("form.task")) : [])
      .map((form) => form.dataset.assignment)
      .filter(Boolean);
  }

  function advance() {
    if (ahead && ahead.content.querySelector("form.task")) {
      current.replaceChildren(ahead.content.cloneNode(true));
      ahead.innerHTML = "";
      mount();
    } else {
      waiting = true;
      task = null;
      current.innerHTML = '<div class="empty"><div class="progress indeterminate"><span></span></div><p>Fetching the next item…</p></div>';
    }
  }

  function receive(body) {
    const progress = document.getElementById("progress");
    if (body.progress_html && progress) {
      progress.innerHTML = body.progress_html;
    } else {
      Object.entries(body.progress || {}).forEach(([key, value]) => {
        const cell = document.querySelector(`[data-progress="${key}"]`);
        if (cell && value !== null) cell.textContent = Number(value).toLocaleString();
      });
    }
    if (body.recent_html) {
      const recent = document.getElementById("recent");
      if (recent) recent.innerHTML = body.recent_html;
    }
    if (waiting) {
      waiting = false;
      if (body.next_html) {
        current.innerHTML = body.next_html;
        mount();
      } else {
        current.innerHTML = `<div class="empty"><p>${escapeHtml(body.no_task_message || "Nothing more to label.")}</p><a class="btn" href="">Check again</a></div>`;
      }
    } else if (body.next_html && ahead && !ahead.content.querySelector("form.task")) {
      ahead.innerHTML = body.next_html;
    }
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (error) {
      return null;
    }
  }

  async function send(url, data, assignmentId, summary) {
    const back = `<a href="?assignment=${encodeURIComponent(assignmentId)}">Go back to it</a>`;
    for (;;) {
      data.delete("holding");
      held().forEach((id) => data.append("holding", id));
      let response = null;
      try {
        response = await fetch(url, {
          method: "POST",
          body: data,
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
        });
      } catch (error) {
        response = null;
      }
      if (response === null || response.status >= 500) {
        // Not arrived, or not committed: the same data (same submission id) goes again.
        const body = response ? await readJson(response) : null;
        const why = response === null ? "the connection failed" : (body && body.message) || `the server answered ${response.status}`;
        await offerRetry(summary, why);
        continue;
      }
      const body = await readJson(response);
      if (!response.ok || !body) {
        const why = body && body.message ? body.message : `the server answered ${response.status}`;
        showToast(`Your answer (${escapeHtml(summary)}) was not saved: ${escapeHtml(why)} ${back}`);
        if (waiting) receive({ progress: {}, next_html: "" });
        return;
      }
      if (toast && toast.classList.contains("info")) toast.hidden = true;
      receive(body);
      return;
    }
  }

  function submit(skip, submitter) {
    if (!task) return;
    if (!skip && task.kind === "spans" && task.pending) {
      // Enter right after selecting words means "label them", not "no entities".
      const words = task.text.slice(task.pending.start, task.pending.end);
      showToast(`The words “${escapeHtml(words)}” have no type yet: ${labelKeys()}, or <kbd>Esc</kbd> to drop the selection.`, "info");
      return;
    }
    if (!skip && !task.valid()) {
      showToast("Choose a label first (press its key).", "info");
      return;
    }
    task.prepare();
    if (editMode) {
      // form.submit() sends no button's value: carry the one pressed (the review page's
      // "Save and review the next" sends then=next), or the server stays on this item.
      if (submitter && submitter.name) {
        const pressed = document.createElement("input");
        pressed.type = "hidden";
        pressed.name = submitter.name;
        pressed.value = submitter.value;
        task.form.appendChild(pressed);
      }
      task.form.submit();
      return;
    }
    const form = task.form;
    const data = new FormData(form);
    const url = skip ? form.dataset.skipUrl : form.action;
    const summary = skip ? "skip" : task.summary();
    advance();
    unsent += 1;
    queue = queue.then(() => send(url, data, form.dataset.assignment, summary)).finally(() => (unsent -= 1));
  }

  // Sends the item's note to reviewers; the item stays on screen to answer or skip.
  async function sendFeedback(form) {
    const button = form.querySelector(".feedback-button");
    let response = null;
    try {
      response = await fetch(button.getAttribute("formaction"), {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      });
    } catch (error) {
      response = null;
    }
    const body = response ? await readJson(response) : null;
    if (response && response.ok && body) {
      const details = form.querySelector("details.feedback");
      const text = form.querySelector("textarea[name=feedback_text]");
      if (text) text.value = "";
      if (details) details.open = false;
      showToast(escapeHtml(body.message), "info");
      if (task && task.form === form && task.textEl) task.textEl.focus({ preventScroll: true });
    } else {
      const why = body && body.message ? body.message : "the connection failed";
      showToast(`Your note was not sent: ${escapeHtml(why)} Try again.`);
    }
  }

  function labelKeys() {
    const keyed = task ? task.inputs.filter((input) => input.dataset.key) : [];
    if (!keyed.length) return "choose one of the labels";
    return "press " + keyed.map((input) => `<kbd>${escapeHtml(input.dataset.key)}</kbd> ${escapeHtml(input.dataset.name)}`).join(", ");
  }

  function keyHelp(pressed) {
    const keys = [labelKeys(), "<kbd>Enter</kbd> submit", "<kbd>Shift</kbd>+<kbd>Enter</kbd> skip"];
    if (task && task.form.querySelector('.suggestion[data-accept="1"]')) keys.push("<kbd>Shift</kbd>+<kbd>A</kbd> accept the suggestion");
    if (task && task.kind === "spans") keys.push("<kbd>←</kbd> <kbd>→</kbd> move over words", "<kbd>Del</kbd> remove the chosen span");
    keys.push("<kbd>Esc</kbd> clear", "<kbd>Tab</kbd> next control", "<kbd>?</kbd> all keys");
    showToast(`<kbd>${escapeHtml(pressed)}</kbd> does nothing here. Keys: ${keys.join("; ")}.`, "info");
  }

  // Enter belongs to the task on the item's text, its labels and the page itself; on any
  // other control (a link, a <summary>, a button other than Submit) it does that control's job.
  function enterIsOurs(target) {
    if (!target || target === document.body || target === document.documentElement) return true;
    if (target.matches(".task-text, input[data-key]")) return true;
    return !target.closest("a[href], button, summary, select, textarea, input, [contenteditable=true], [role=button]");
  }

  function goBack() {
    const link = document.querySelector("#recent-list a[href*='/answers/']");
    if (link) window.location.href = link.href;
  }

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    // Keys on the messages' own buttons and links (Retry) do what those controls do.
    if (target && target.closest && target.closest(".toast")) return;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" || (target.tagName === "INPUT" && target.type === "text"))) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Enter") {
      if (!enterIsOurs(target)) return;
      event.preventDefault();
      submit(event.shiftKey && !editMode);
      return;
    }
    if (event.key === "?") {
      const help = document.getElementById("shortcuts");
      if (help) {
        event.preventDefault();
        help.open = !help.open;
      }
      return;
    }
    if (event.key === "Escape") {
      const back = document.querySelector(".workspace-head a.btn");
      if (!(task && task.clear()) && editMode && back) window.location.href = back.href;
      return;
    }
    if (!task || event.key === "Tab") return;
    if (event.shiftKey && event.key.toLowerCase() === "a" && task.form.querySelector(".suggestion")) {
      event.preventDefault();
      if (!task.acceptSuggestion()) showToast("The model is not sure enough of this suggestion to take it with one key: choose the labels yourself.", "info");
      return;
    }
    if (task.kind === "spans" && (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
      event.preventDefault();
      task.moveCursor(event.key === "ArrowRight" ? 1 : -1, event.shiftKey);
      return;
    }
    if (event.key === "Delete" || event.key === "Backspace") {
      if (task.kind === "spans" && task.removeChosen()) {
        event.preventDefault();
        return;
      }
      if (event.key === "Backspace" && !editMode) {
        event.preventDefault();
        goBack();
      }
      return;
    }
    const input = task.byKey[event.key.toLowerCase()];
    if (input) {
      event.preventDefault();
      task.pressLabel(input);
    } else if (event.key.length === 1 && event.key !== " ") {
      keyHelp(event.key);
    }
  });

  mount();
})();

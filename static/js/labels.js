// The labels page: arrows move a row up or down and renumber the rows' positions (without
// JavaScript the numbers themselves set the order); any change says "Unsaved changes"
// and asks htmx for a fresh preview (the preview listens for "labels-moved" too).
(function () {
  "use strict";

  function renumber(form) {
    form.querySelectorAll("tbody tr.label-row").forEach((row, index) => {
      const position = row.querySelector("input.position-input");
      if (position) position.value = String(index + 1);
    });
  }

  function unsaved(form) {
    const note = document.getElementById("labels-unsaved");
    if (note) note.hidden = false;
  }

  function move(button) {
    const row = button.closest("tr.label-row");
    const form = button.closest("form");
    if (!row || !form) return;
    const other = button.dataset.move === "up" ? row.previousElementSibling : row.nextElementSibling;
    // The empty row for a new label stays last.
    if (!other || other.classList.contains("new-label")) return;
    if (button.dataset.move === "up") other.before(row);
    else other.after(row);
    renumber(form);
    button.focus();
    unsaved(form);
    form.dispatchEvent(new Event("labels-moved", { bubbles: true }));
  }

  function init(root) {
    (root || document).querySelectorAll("#labels-form button.move").forEach((button) => {
      button.hidden = false;
    });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("#labels-form button.move");
    if (button) move(button);
  });
  document.addEventListener("input", (event) => {
    const form = event.target.closest && event.target.closest("#labels-form");
    if (!form) return;
    unsaved(form);
    const row = event.target.closest("tr.label-row");
    if (row && event.target.type === "checkbox") row.classList.toggle("deleting", event.target.checked);
  });
  document.addEventListener("htmx:load", (event) => init(event.detail.elt));
  document.addEventListener("DOMContentLoaded", () => init(document));
})();

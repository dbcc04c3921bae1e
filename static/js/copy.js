// Copy buttons: <button data-copy="id of an input">Copy</button> copies that input's value.
// One listener on the document, so buttons in rows that htmx swaps in work as well.
// The Clipboard API needs a secure context (HTTPS or localhost); elsewhere the text is
// selected and copied the old way, or left selected for Ctrl+C.
(function () {
  "use strict";

  async function copyText(field) {
    try {
      await navigator.clipboard.writeText(field.value);
      return true;
    } catch (error) {
      field.focus();
      field.select();
      try {
        return document.execCommand("copy");
      } catch (ignored) {
        return false;
      }
    }
  }

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const field = document.getElementById(button.dataset.copy);
    if (!field) return;
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    const copied = await copyText(field);
    button.textContent = copied ? "Copied" : "Press Ctrl+C";
    if (!copied) field.select();
    window.setTimeout(function () {
      button.textContent = label;
    }, 2000);
  });
})();

// The "Try the model" page: the entity checkboxes show or hide the marks of their kind.
// One listener on the document, so results swapped in by htmx work too; kinds are compared
// as strings, never built into a selector, so any label name is safe.
(function () {
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.closest("#entity-filter")) return;
    document.querySelectorAll("#result mark[data-kind]").forEach(function (mark) {
      if (mark.dataset.kind === box.dataset.kind) mark.classList.toggle("off", !box.checked);
    });
  });
})();

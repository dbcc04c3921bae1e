// The labelling-function pages: tables sorted by their headings' buttons, the "n" shortcut
// (and any other <a data-shortcut>), and the editor showing only the chosen kind's fields.
// Listeners sit on the document, so tables and forms swapped in by htmx work too.
(function () {
  // 1. Sorting: a heading's button sorts the body's rows by the data-value of its column;
  // a second press reverses. Empty values (nothing to judge) go last either way.
  function compare(a, b, numeric) {
    if (a === "" || b === "") return a === b ? 0 : a === "" ? 1 : -1;
    if (numeric) return parseFloat(a) - parseFloat(b);
    return a.localeCompare(b, undefined, { sensitivity: "base", numeric: true });
  }

  function sortBy(heading, numeric) {
    var table = heading.closest("table");
    var column = Array.prototype.indexOf.call(heading.parentNode.children, heading);
    var ascending = heading.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("thead th[aria-sort]").forEach(function (th) { th.removeAttribute("aria-sort"); });
    heading.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.filter.call(body.rows, function (row) { return row.cells.length > column; });
    rows.sort(function (x, y) {
      var a = x.cells[column].dataset.value || "";
      var b = y.cells[column].dataset.value || "";
      var order = compare(a, b, numeric);
      if (a === "" || b === "") return order;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("table[data-sortable] thead th button[data-sort]");
    if (button) sortBy(button.closest("th"), button.dataset.sort === "number");
  });

  // 2. Shortcuts: a single key follows the link that names it, unless the person is typing.
  document.addEventListener("keydown", function (event) {
    if (!event.key || event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented || event.repeat) return;
    var target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    var key = event.key.toLowerCase();
    var link = Array.prototype.find.call(document.querySelectorAll("a[data-shortcut]"), function (a) {
      return a.dataset.shortcut === key;
    });
    if (link) {
      event.preventDefault();
      link.click();
    }
  });

  // 3. The editor: fields marked data-kinds="keywords regex ..." show for those kinds only
  // (the server keeps only the chosen kind's keys anyway; without script all fields show).
  function showKind(form) {
    var select = form.querySelector("select[name=kind]");
    if (!select) return;
    form.querySelectorAll("[data-kinds]").forEach(function (part) {
      part.hidden = part.dataset.kinds.split(" ").indexOf(select.value) < 0;
    });
  }

  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (event.target.name === "kind" && form && form.hasAttribute("data-function-form")) showKind(form);
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-function-form]").forEach(showKind);
  });
})();

// The learning settings (templates/learning/learning.html): each select's list of explained
// choices marks the one chosen as the select changes, and the strategy mix's weights show only
// while the weighted mix is chosen (or a weight was refused). Without this script every part
// shows, and the mark stays on the saved choice.
(function () {
  function sync(select) {
    document.querySelectorAll('[data-explains="' + select.id + '"] [data-choice]').forEach(function (row) {
      row.classList.toggle("current", row.dataset.choice === select.value);
    });
    document.querySelectorAll('[data-shown-by="' + select.id + '"]').forEach(function (part) {
      part.hidden = select.value !== part.dataset.shownFor && !part.hasAttribute("data-has-errors");
    });
  }
  function start() {
    document.querySelectorAll("[data-explains]").forEach(function (list) {
      var select = document.getElementById(list.dataset.explains);
      if (!select) return;
      sync(select);
      select.addEventListener("change", function () { sync(select); });
    });
  }
  document.addEventListener("DOMContentLoaded", start);
})();

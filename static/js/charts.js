// Draws every <canvas data-chart="type" data-source="json-script-id"> with Chart.js.
// The data comes from Django's json_script, so templates never build JavaScript by hand.
(function () {
  function draw(root) {
    if (!window.Chart) return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      var source = document.getElementById(canvas.dataset.source);
      if (!source) return;
      var spec = JSON.parse(source.textContent);
      canvas.dataset.drawn = "1";
      new Chart(canvas, {
        type: canvas.dataset.chart,
        data: spec.data,
        options: Object.assign(
          { responsive: true, maintainAspectRatio: false, animation: { duration: 300 },
            plugins: { legend: { position: "bottom", labels: { boxWidth: 12, usePointStyle: true } } } },
          spec.options || {}
        ),
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });
  // A part swapped out (the learning curve after a run) takes its chart with it.
  document.addEventListener("htmx:beforeCleanupElement", function (event) {
    var chart = window.Chart && event.target.matches && event.target.matches("canvas[data-chart]") && Chart.getChart(event.target);
    if (chart) chart.destroy();
  });
})();

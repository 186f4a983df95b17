// Draws the analytics charts with the vendored Chart.js. Each chart's numbers come
// from a json_script element and are also in the table beside it, which is what a
// browser without JavaScript shows; with charts drawn the table folds away.
(function () {
  "use strict";
  if (!window.Chart) return;

  var COLOURS = ["#3b5bdb", "#e67700", "#2b8a3e", "#c92a2a", "#5f3dc4", "#0b7285"];
  var DARK_COLOURS = ["#91a7ff", "#ffc078", "#8ce99a", "#ffa8a8", "#b197fc", "#66d9e8"];
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)");

  // Text and grid lines in the page's own colours (Chart.js's grey text read about 3:1 on the dark theme).
  function applyTheme() {
    var style = getComputedStyle(document.documentElement);
    window.Chart.defaults.color = style.getPropertyValue("--muted").trim() || "#667085";
    window.Chart.defaults.borderColor = style.getPropertyValue("--line").trim() || "#e3e6eb";
  }

  function palette() { return dark && dark.matches ? DARK_COLOURS : COLOURS; }
  var money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 4 });
  var amount = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 4 });

  // Money in the chart's own unit when it names one (the portal's: "€" before, " credits" after), else dollars.
  function formatMoney(data, value) {
    if (data.unit_before === undefined && data.unit_after === undefined) return money.format(value);
    return (value < 0 ? "-" : "") + (data.unit_before || "") + amount.format(Math.abs(value)) + (data.unit_after || "");
  }

  function datasets(data, isSparkline) {
    return data.datasets.map(function (set, index) {
      var colours = palette();
      var colour = colours[index % colours.length];
      return {
        label: set.label,
        data: set.data.map(Number),
        borderColor: colour,
        backgroundColor: data.type === "bar" ? colour : colour + "22",
        borderWidth: isSparkline ? 1.5 : 2,
        pointRadius: isSparkline ? 0 : 2,
        fill: isSparkline,
        tension: 0.25,
        // Today is not over: its segment is dashed, so a low figure reads as "so far", not as a drop.
        segment: data.partial_last ? {
          borderDash: function (context) { return context.p1DataIndex === set.data.length - 1 ? [5, 4] : undefined; }
        } : undefined
      };
    });
  }

  function options(data, isSparkline) {
    var format = function (value) { return data.money ? formatMoney(data, value) : value.toLocaleString("en-US"); };
    if (isSparkline) {
      return {
        responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: function (item) { return format(item.parsed.y); } } } },
        scales: { x: { display: false }, y: { display: false, beginAtZero: true } }
      };
    }
    return {
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { position: "bottom" },
        tooltip: { callbacks: { label: function (item) { return item.dataset.label + ": " + format(item.parsed.y); } } }
      },
      scales: { y: { beginAtZero: true, ticks: { callback: format } } }
    };
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source || canvas.getAttribute("data-drawn")) return;
    var data = JSON.parse(source.textContent);
    var isSparkline = data.type === "sparkline";
    canvas.parentElement.hidden = false;
    new window.Chart(canvas, {
      type: isSparkline ? "line" : data.type,
      data: { labels: data.labels, datasets: datasets(data, isSparkline) },
      options: options(data, isSparkline)
    });
    canvas.setAttribute("data-drawn", "true");
    var figure = canvas.closest("figure");
    var table = figure && figure.querySelector("details[data-chart-table]");
    if (table) table.open = false;
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  applyTheme();
  drawAll(document);
  // A theme switched while the page is open: redraw every chart in the new colours.
  if (dark && dark.addEventListener) {
    dark.addEventListener("change", function () {
      applyTheme();
      document.querySelectorAll("canvas[data-drawn]").forEach(function (canvas) {
        var chart = window.Chart.getChart(canvas);
        if (chart) chart.destroy();
        canvas.removeAttribute("data-drawn");
      });
      drawAll(document);
    });
  }
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
})();

// Light, dark, or the system's choice; remembered in this browser. Loaded in <head> so the
// page is painted in the chosen theme from the start.
(function () {
  "use strict";
  var KEY = "pipecat-roark-theme";
  var ORDER = ["system", "light", "dark"];
  function stored() {
    try { return localStorage.getItem(KEY) || "system"; } catch (e) { return "system"; }
  }
  function apply(choice) {
    var root = document.documentElement;
    if (choice === "system") { root.removeAttribute("data-theme"); } else { root.setAttribute("data-theme", choice); }
    var button = document.getElementById("theme-toggle");
    if (button) {
      button.textContent = "Theme: " + choice;
    }
  }
  var current = stored();
  apply(current);
  document.addEventListener("DOMContentLoaded", function () {
    apply(current);
    var button = document.getElementById("theme-toggle");
    if (!button) { return; }
    button.addEventListener("click", function () {
      current = ORDER[(ORDER.indexOf(current) + 1) % ORDER.length];
      try { localStorage.setItem(KEY, current); } catch (e) { /* private mode: this page only */ }
      apply(current);
      document.dispatchEvent(new CustomEvent("themechange", { detail: current }));
    });
  });
})();

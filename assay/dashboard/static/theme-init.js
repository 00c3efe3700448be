// Applies the persisted (or system) colour theme before first paint, so there is no flash.
(function () {
  var theme = null;
  try { theme = localStorage.getItem("assay-theme"); } catch (e) { /* storage disabled */ }
  if (theme !== "light" && theme !== "dark") {
    theme = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.setAttribute("data-theme", theme);
})();

// The Learn pages show library source beside the math (mkdocstrings' "Source code in ..."
// blocks, collapsed by default): open them there, so the lines are on the page.
document.addEventListener("DOMContentLoaded", function () {
  if (!/\/learn\//.test(window.location.pathname)) return;
  document.querySelectorAll("details.quote").forEach(function (d) { d.open = true; });
});

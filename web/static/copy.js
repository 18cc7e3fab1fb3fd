// "Copy" buttons on settings pages: put data-copy on the clipboard.
// A file, not inline script, because the CSP allows no inline script.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button) return;
  var text = button.getAttribute("data-copy");
  function done() { button.textContent = "Copied"; }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else {
    var field = button.parentElement.querySelector("input.copy-source");
    if (field) { field.select(); document.execCommand("copy"); done(); }
  }
});

// "Copy" buttons on settings pages: put the button's data-copy on the clipboard.
// A file, not inline script, because the CSP allows no inline script.
(function () {
  function selectAndCopy(button) {
    var field = button.parentElement.querySelector("input.copy-source");
    if (!field) return false;
    field.focus();
    field.select();
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) return;
    var text = button.getAttribute("data-copy");
    function done() { button.textContent = "Copied"; }
    function fallback() { if (selectAndCopy(button)) done(); else button.textContent = "Select and copy"; }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  });
})();

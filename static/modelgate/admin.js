// modelgate operator console: the copy button of the one-time key page (no framework, no CDN).
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) {
    return;
  }
  const target = document.getElementById(button.dataset.copyTarget);
  if (!target) {
    return;
  }
  const text = target.textContent.trim();
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (error) {
    // No clipboard API (plain http on a remote host): select the text and use the older copy command.
    const range = document.createRange();
    range.selectNodeContents(target);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      copied = document.execCommand("copy");
    } catch (ignored) {
      copied = false;
    }
  }
  button.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
  button.classList.toggle("mg-copied", copied);
});

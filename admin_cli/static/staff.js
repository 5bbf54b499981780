// The staff pages' one script (admin_cli/web): what plain HTML cannot do. Everything works
// without it; nothing is fetched from anywhere.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "Print" buttons (data-print): the browser's own dialog, A4 by the page's print styles.
  for (const button of document.querySelectorAll("[data-print]")) {
    button.hidden = false;
    button.addEventListener("click", () => window.print());
  }
  // After a refused form, a screen reader and the keyboard start at what went wrong.
  const problem = document.querySelector(".problem[role=alert]");
  if (problem && !document.querySelector("[autofocus]")) {
    problem.tabIndex = -1;
    problem.focus();
  }
});

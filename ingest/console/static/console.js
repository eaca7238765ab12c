// Small helpers for the console: local times, select-all, single-row replay, confirmations.
"use strict";

(function () {
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const absolute = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });

  function ago(date) {
    const seconds = Math.round((date - Date.now()) / 1000);
    const steps = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    for (const [unit, size] of steps) {
      if (Math.abs(seconds) >= size || unit === "second") {
        return relative.format(Math.round(seconds / size), unit);
      }
    }
    return "";
  }

  // Every <time datetime="ISO UTC"> is shown in the viewer's zone, the UTC value on hover.
  function localiseTimes() {
    for (const node of document.querySelectorAll("time[datetime]")) {
      const date = new Date(node.getAttribute("datetime"));
      if (Number.isNaN(date.getTime())) continue;
      node.title = `${node.getAttribute("datetime")} (UTC: ${date.toISOString()})`;
      node.textContent = node.hasAttribute("data-ago") ? ago(date) : absolute.format(date);
    }
  }

  function wireForms() {
    for (const box of document.querySelectorAll("[data-select-all]")) {
      box.addEventListener("change", () => {
        for (const row of box.closest("form").querySelectorAll('input[name="ids"]')) {
          row.checked = box.checked;
        }
      });
    }
    // A row's own Replay button replays that row only, whatever else is selected.
    for (const button of document.querySelectorAll("[data-only]")) {
      button.addEventListener("click", () => {
        for (const row of button.closest("form").querySelectorAll('input[name="ids"]')) {
          row.checked = false;
        }
      });
    }
    for (const button of document.querySelectorAll("[data-confirm]")) {
      button.addEventListener("click", (event) => {
        if (!window.confirm(button.dataset.confirm)) event.preventDefault();
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    localiseTimes();
    wireForms();
  });
})();

// The console's little JavaScript: confirmations, copy buttons, timeline details, auto-refresh.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  }
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", () => {
      navigator.clipboard.writeText(button.dataset.copy).then(() => {
        button.textContent = "copied";
      });
    });
  }
  // Geometry from data attributes: the Content-Security-Policy allows no inline styles.
  for (const el of document.querySelectorAll("[data-width]")) {
    el.style.width = el.dataset.width + "%";
    if (el.dataset.left !== undefined) el.style.left = el.dataset.left + "%";
  }
  const detail = document.getElementById("tl-detail");
  for (const bar of document.querySelectorAll(".bar")) {
    const show = () => { if (detail) detail.textContent = bar.dataset.detail; };
    bar.addEventListener("click", show);
    bar.addEventListener("focus", show);
  }
  const auto = document.getElementById("autorefresh");
  if (auto) {
    auto.checked = localStorage.getItem("stepping-autorefresh") !== "off";
    auto.addEventListener("change", () => {
      localStorage.setItem("stepping-autorefresh", auto.checked ? "on" : "off");
    });
    // A reload keeps the URL, and with it every filter.
    setInterval(() => { if (auto.checked) window.location.reload(); }, 5000);
  }
});

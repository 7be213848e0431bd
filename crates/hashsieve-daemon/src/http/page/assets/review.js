// hashsieve's review page: keyboard shortcuts and the step-by-step reveal of a preview.
// Served by the daemon itself (no CDN, no build step); the page works without it, by its
// buttons and forms. Every preview step is fetched from the daemon, which audits each view.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const preview = document.getElementById("preview");
  const stepLabel = document.getElementById("step");
  const steps = preview ? preview.dataset.steps.split(" ") : [];
  let step = 0;

  function show(index) {
    if (!preview) return;
    step = Math.max(0, Math.min(index, steps.length - 1));
    preview.src = "/review/items/" + preview.dataset.item + "/preview/" + steps[step];
    preview.alt = "Item " + preview.dataset.item + ", preview at step " + steps[step];
    preview.classList.toggle("full-size", steps[step] === "full-size");
    stepLabel.textContent = steps[step];
  }

  // Another member in the preview: it starts blurred again.
  function showMember(item) {
    if (!preview) return;
    preview.hidden = false;
    document.querySelector(".unavailable").hidden = true;
    preview.dataset.item = item;
    document.getElementById("shown-item").textContent = item;
    show(0);
    preview.scrollIntoView({ block: "nearest" });
  }

  if (preview) {
    document.getElementById("reveal").addEventListener("click", () => show(step + 1));
    document.getElementById("reblur").addEventListener("click", () => show(0));
    preview.addEventListener("error", () => {
      document.querySelector(".unavailable").hidden = false;
      preview.hidden = true;
    });
    // Moving on re-blurs: another tab, another window, or leaving the page.
    document.addEventListener("visibilitychange", () => { if (document.hidden) show(0); });
    window.addEventListener("pagehide", () => show(0));
  }

  for (const link of document.querySelectorAll("a.view")) {
    link.addEventListener("click", (event) => {
      if (!preview) return;
      event.preventDefault();
      showMember(link.dataset.item);
    });
  }

  const members = Array.from(document.querySelectorAll("tr.member"));
  let focused = -1;
  function focusMember(index) {
    if (members.length === 0) return;
    focused = (index + members.length) % members.length;
    members[focused].focus();
  }

  function submit(selector) {
    const form = document.querySelector(selector);
    if (form) form.requestSubmit();
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target instanceof HTMLInputElement && target.type !== "checkbox") return;
    if (target instanceof HTMLTextAreaElement) return;
    const key = event.key;
    let handled = true;
    if (key === "r") show(step + 1);
    else if (key === "b") show(0);
    else if (/^[1-9]$/.test(key)) submit('form[data-key="' + key + '"]');
    else if (key === "l" || key === "u") submit('form[data-key="' + key + '"]');
    else if (key === "z") submit("#undo");
    else if (key === "j") focusMember(focused + 1);
    else if (key === "k") focusMember(focused - 1);
    else if (key === "v" && focused >= 0) showMember(members[focused].dataset.item);
    else if (key === "x" && focused >= 0) {
      const box = members[focused].querySelector("input[type=checkbox]");
      if (box && !box.disabled) box.checked = !box.checked;
    } else if (key === "s") {
      if (document.querySelector('input[form="split"]:checked')) submit("#split");
    } else if (key === "n") {
      const skip = document.getElementById("skip");
      if (skip) window.location.assign(skip.href);
    } else if (key === "q") window.location.assign("/review/");
    else handled = false;
    if (handled) event.preventDefault();
  });
});

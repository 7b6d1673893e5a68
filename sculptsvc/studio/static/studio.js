// The Studio's little JavaScript: 3D viewers and waiting for a run. Pages work without it
// (except the viewers); every script comes from this server (see /vendor in app.py).

const sculpture = document.querySelector("model-viewer");
if (sculpture) {
  sculpture.addEventListener("load", () => {
    document.body.dataset.viewerLoaded = String(Math.round(performance.now()));
  }, { once: true });
  sculpture.addEventListener("error", (event) => {
    document.body.dataset.viewerError = String(event.detail?.type || "error");
  });
  await import("/vendor/model-viewer-module.min.js");
}

const mold = document.getElementById("mold");
if (mold) {
  const { showMold } = await import("/static/molds.js");
  showMold(mold);
}

// A design run or a reproduction in progress: ask the server, reload when it is done.
const POLL_MS = 250;
const runState = document.getElementById("run-state");
if (runState && runState.dataset.state === "running") {
  const url = `/design/${runState.dataset.design}/status.json`;
  const poll = async () => {
    try {
      const status = await (await fetch(url, { cache: "no-store" })).json();
      if (status.state !== "running" || String(status.run) !== runState.dataset.run) {
        location.reload();
        return;
      }
    } catch (err) { /* server busy: try again */ }
    setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, POLL_MS);
}
const reload = document.querySelector("[data-poll-reload]");
if (reload) setTimeout(() => location.reload(), Number(reload.dataset.pollReload));

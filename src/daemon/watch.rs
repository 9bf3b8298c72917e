//! Watching a soa-configs directory: file events, debounced, become one
//! `Trigger::Watch`. Events are only a hint to rescan; the snapshot
//! comparison decides what changed, so a partial write that fails to parse
//! is simply seen again (and the service stays unknown, never removed).

use super::http::Trigger;
use notify::{RecursiveMode, Watcher};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Starts watching `dir`; keep the returned watcher alive while watching.
/// Returns `None` (and logs) when the platform cannot watch: the interval
/// still rescans.
pub fn watch_dir(
    dir: &Path,
    debounce: Duration,
    triggers: mpsc::Sender<Trigger>,
) -> Option<notify::RecommendedWatcher> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event
                .paths
                .iter()
                .any(|p| p.components().any(|c| c.as_os_str() == ".git"))
        {
            let _ = events_tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the soa-configs directory; relying on the interval");
            return None;
        }
    };
    if let Err(error) = watcher.watch(dir, RecursiveMode::Recursive) {
        tracing::warn!(%error, dir = %dir.display(), "cannot watch the soa-configs directory; relying on the interval");
        return None;
    }
    tokio::spawn(async move {
        while events_rx.recv().await.is_some() {
            // Wait for a quiet period, swallowing the rest of the burst.
            loop {
                match tokio::time::timeout(debounce, events_rx.recv()).await {
                    Ok(Some(())) => {}
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let _ = triggers.try_send(Trigger::Watch);
        }
    });
    Some(watcher)
}

//! One shutdown signal for every server and background task of a process.

use tokio::sync::watch;

/// Cloneable; `wait()` resolves once shutdown was triggered (by SIGINT,
/// SIGTERM, or [`Shutdown::trigger`]).
#[derive(Clone)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn new() -> Self {
        let (sender, receiver) = watch::channel(false);
        Self { sender, receiver }
    }

    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub async fn wait(mut self) {
        // An error means every sender is gone, which is also an end.
        let _ = self.receiver.wait_for(|stopped| *stopped).await;
    }

    /// Triggers shutdown on SIGINT or SIGTERM.
    pub fn on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let interrupt = tokio::signal::ctrl_c();
            #[cfg(unix)]
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let terminate = std::future::pending::<()>();
            tokio::select! {
                _ = interrupt => {}
                _ = terminate => {}
            }
            tracing::info!("shutting down");
            this.trigger();
        });
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

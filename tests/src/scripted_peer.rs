//! A neighbour that answers as the test says: it completes the QUIC handshake with the
//! agency's real node certificate, reads each request (and whatever follows it on the
//! stream, such as a document's attachments) and sends back the answer the test's script
//! gives. What a faulty or hostile node looks like to its neighbour, answer by answer.

use std::sync::Arc;

use node::protocol::{NodeRequest, NodeResponse, encode, read_frame};
use pki::AgencyCode;

use crate::network::TestNet;

/// The script: the answer to each request.
pub type Script = dyn Fn(NodeRequest) -> NodeResponse + Send + Sync;

/// Listening on an agency's address until dropped.
pub struct ScriptedPeer {
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedPeer {
    /// Takes `code`'s address in `net` (its node must not be running, or just stopped) and
    /// answers every request with `script`.
    pub fn start(net: &mut TestNet, code: &AgencyCode, script: Arc<Script>) -> ScriptedPeer {
        let endpoint = crate::silent_peer::endpoint_as(net, code);
        let accepting = endpoint.clone();
        let task = tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                let script = Arc::clone(&script);
                tokio::spawn(async move {
                    let Ok(connection) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                        let script = Arc::clone(&script);
                        tokio::spawn(async move {
                            let Ok(request) = read_frame::<NodeRequest>(&mut recv, 16 << 20).await else { return };
                            // The rest of the stream (a document's attachments), unread.
                            if recv.read_to_end(64 << 20).await.is_err() {
                                return;
                            }
                            let _ = send.write_all(&encode(&script(request))).await;
                            let _ = send.finish();
                            let _ = send.stopped().await;
                        });
                    }
                });
            }
        });
        ScriptedPeer { endpoint, task }
    }
}

impl Drop for ScriptedPeer {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"gone");
        self.task.abort();
    }
}

//! pingora with nothing of Switchyard: a `ProxyHttp` that only names the mock as its upstream.
//! It is the framework's own floor on this machine, measured in the same run as the gateway,
//! so that the report can tell the cost of pingora from the cost of Switchyard's work.
//!
//! The harness starts it as a child process of its own binary (`LOAD_ROLE=pingora-null`),
//! pinned to the gateway's core, with the gateway's server settings: one thread, client
//! sockets read without pingora's 64 KiB buffer, upstream keep-alive.

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

/// The environment variable that makes the bench binary this proxy.
pub const ROLE: &str = "pingora-null";

struct Null {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Null {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.idle_timeout = Some(std::time::Duration::from_secs(90));
        Ok(Box::new(peer))
    }
}

/// Serves on `listen`, proxying to `upstream`, until the process is killed.
pub fn run(listen: &str, upstream: SocketAddr) -> ! {
    let conf = ServerConf {
        threads: 1,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Null { upstream });
    proxy.add_listener(ListenerConfig::tcp(listen).l4_buffer(L4BufferSettings {
        read: Some(0),
        write: None,
    }));
    server.add_service(proxy);
    server.run_forever()
}

//! The listeners: the client's connection and its request heads, TLS, the graceful stop, and
//! the admin listener, and the addresses they bind (port 0).

pub mod admin;
pub mod bind;
pub mod downstream;
pub mod drain;
pub mod probe;
pub mod request_head;
pub mod tls;

//! The listeners: the client's connection and its request heads, TLS, the graceful stop, and
//! the admin listener.

pub mod admin;
pub mod downstream;
pub mod drain;
pub mod request_head;
pub mod tls;

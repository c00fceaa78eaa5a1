//! Sending what the outbox holds: webhooks signed per Standard Webhooks, emails
//! over SMTP or as `.eml` files, with retries.

pub mod email;
pub mod payload;
pub mod retry;
pub mod webhook;
pub mod worker;

//! The ConsentID wire protocol (DESIGN §4, reference/mobile-auth.md §7), shared by the server
//! and the app: request and response bodies, the signed strings both sides build, and the
//! small amount of cryptography both sides must do identically. No IO.
//!
//! Encodings: binary values are base64url without padding; times are Unix seconds; keys and
//! signatures are P-256 (SubjectPublicKeyInfo DER, ECDSA-SHA256 DER signatures).

pub mod app;
pub mod crypto;

pub use crypto::{b64, unb64, CryptoError};

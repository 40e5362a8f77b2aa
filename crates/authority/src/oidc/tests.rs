//! The provider's use cases on a real store (SQLite and PostgreSQL).

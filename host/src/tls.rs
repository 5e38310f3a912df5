//! Mutual TLS for peer and client connections (being written).

//! Async adapter (below).

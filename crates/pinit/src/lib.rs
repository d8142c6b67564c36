//! Safe pinned in-place initialisation: build values that must never move directly in their final place.

#![no_std]

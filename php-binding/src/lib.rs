//! The PHP extension (ext-php-rs): `Quicpro\Config`, `Server`, `Session`,
//! streams, the `quicpro_*` client functions, the exception tree, the
//! `quicpro.shm_size` INI setting and the shared-memory ticket LRU.
//!
//! Not written yet: see the issue "php-binding".

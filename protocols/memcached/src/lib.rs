//! junction-memcached: placeholder, being written.

//! junction-fastcgi: placeholder, being written.

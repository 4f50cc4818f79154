//! junction-uwsgi: placeholder, being written.

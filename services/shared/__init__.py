"""Code that every loansuite service uses: settings, database, envelope, server, relay."""

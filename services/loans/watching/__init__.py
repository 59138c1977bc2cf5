"""Step 7, revalidate: change notifications after commit, the bus, and WatchLoans."""

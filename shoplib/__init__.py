"""What every service needs: config, logging, gRPC server bootstrap, Redis, transactions, streams."""

"""Paper-reproduction scripts: one module per paper, each writing results/<paper>/."""

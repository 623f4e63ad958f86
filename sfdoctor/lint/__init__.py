"""`sfdoctor lint`: static analysis with libcst."""

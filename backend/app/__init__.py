"""ContextCleanse backend: a small HTTP service that scores e-mails as spam or ham."""

"""The dataset catalog: the types a request may name, declared as data."""

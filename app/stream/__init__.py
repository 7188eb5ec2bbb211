"""The stream edge: Kafka topics, Faust agents, the Avro wire format and the views fed from
topics."""

//! Record values of a topic (`log` or `kafka`) in their `format:`: JSON,
//! Avro or Protobuf — one decoder and one encoder type for every source and
//! sink that reads or writes them.

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use shoal_dsl::{AvroSink, AvroSource, DecodeSpec, FileFormat, ProtoSink, ProtoSource};
use shoal_runtime::Result;

use crate::avro::{AvroDecoder, AvroEncoder};
use crate::format::{BadRecord, RecordChunk, RecordDecoder};
use crate::protobuf::ProtoDecoder;
use crate::protobuf::encode::ProtoEncoder;

/// Decodes record values into batches of a declared schema.
pub enum ValueDecoder {
    /// One JSON object per record.
    Json(RecordDecoder),
    /// `format: avro`.
    Avro(AvroDecoder),
    /// `format: protobuf`.
    Protobuf(ProtoDecoder),
}

impl ValueDecoder {
    /// The decoder the source's settings ask for: Avro or Protobuf when
    /// given, else JSON checked as `decode` says.
    pub fn new(
        schema: SchemaRef,
        avro: Option<&AvroSource>,
        protobuf: Option<&ProtoSource>,
        decode: &DecodeSpec,
    ) -> Result<Self> {
        Ok(match (avro, protobuf) {
            (Some(a), _) => Self::Avro(AvroDecoder::new(schema, a)?),
            (None, Some(p)) => Self::Protobuf(ProtoDecoder::new(schema, p)?),
            (None, None) => {
                Self::Json(RecordDecoder::with_spec(FileFormat::Jsonl, schema, decode)?)
            }
        })
    }

    /// Decode a chunk of records; bad ones are appended to `bad`, in order.
    pub fn decode(
        &mut self,
        chunk: &RecordChunk,
        bad: &mut Vec<BadRecord>,
    ) -> Result<Option<RecordBatch>> {
        match self {
            Self::Json(d) => d.decode(chunk, bad),
            Self::Avro(d) => d.decode(chunk, bad),
            Self::Protobuf(d) => d.decode(chunk, bad),
        }
    }
}

/// Encodes rows as record values.
#[derive(Debug)]
pub enum ValueEncoder {
    /// One JSON object per record.
    Json,
    /// `format: avro`, under a registered schema.
    Avro(AvroEncoder),
    /// `format: protobuf`.
    Protobuf(ProtoEncoder),
}

impl ValueEncoder {
    /// The encoder the sink's settings ask for (registering its schema now
    /// when they name a registry).
    pub fn new(
        schema: &Schema,
        avro: Option<&AvroSink>,
        protobuf: Option<&ProtoSink>,
    ) -> Result<Self> {
        Ok(match (avro, protobuf) {
            (Some(a), _) => Self::Avro(AvroEncoder::registered(schema, &a.url, &a.subject)?),
            (None, Some(p)) => Self::Protobuf(ProtoEncoder::new(
                schema,
                &p.path,
                &p.message,
                p.registry
                    .as_ref()
                    .map(|r| (r.url.as_str(), r.subject.as_str())),
            )?),
            (None, None) => Self::Json,
        })
    }

    /// Append each row of `batch` as one record to `values`, each followed
    /// by one separator byte, with its end (exclusive) in `ends`.
    pub fn encode(
        &mut self,
        batch: &RecordBatch,
        values: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<()> {
        match self {
            Self::Json => {
                let from = values.len();
                {
                    let mut w = arrow::json::LineDelimitedWriter::new(&mut *values);
                    w.write(batch)?;
                    w.finish()?;
                }
                ends.extend(
                    values[from..]
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b'\n')
                        .map(|(i, _)| from + i),
                );
                Ok(())
            }
            Self::Avro(e) => e.encode(batch, values, ends),
            Self::Protobuf(e) => e.encode(batch, values, ends),
        }
    }
}

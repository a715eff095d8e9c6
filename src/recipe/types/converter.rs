//! The recipe's raw converter attributes (`litert_kwargs:`) and op opt-ins (`ops:`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::QuantizedIo;

/// Raw TFLite converter attributes (`tf.lite.TFLiteConverter`), written as names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LitertKwargs {
    /// `converter.optimizations`: a list of `tf.lite.Optimize` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizations: Option<Vec<Optimize>>,
    /// `converter.target_spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_spec: Option<TargetSpec>,
    /// `converter.inference_input_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_input_type: Option<QuantizedIo>,
    /// `converter.inference_output_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_output_type: Option<QuantizedIo>,
    /// `converter.allow_custom_ops`; prefer `ops.custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_custom_ops: Option<bool>,
    /// `converter.exclude_conversion_metadata`: leave out the `CONVERSION_METADATA` entry
    /// (which records the TensorFlow version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_conversion_metadata: Option<bool>,
    /// `converter.experimental_new_converter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental_new_converter: Option<bool>,
    /// `converter.experimental_new_quantizer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental_new_quantizer: Option<bool>,
    /// `converter.experimental_new_dynamic_range_quantizer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental_new_dynamic_range_quantizer: Option<bool>,
    /// `converter.experimental_enable_resource_variables` (Keras sets it to true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental_enable_resource_variables: Option<bool>,
    /// `converter.experimental_lower_to_saved_model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental_lower_to_saved_model: Option<bool>,
    /// `converter.experimental_use_stablehlo_quantizer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental_use_stablehlo_quantizer: Option<bool>,
    /// `converter._experimental_disable_per_channel`: per-tensor instead of per-channel
    /// weight quantization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub _experimental_disable_per_channel: Option<bool>,
    /// `converter._experimental_lower_tensor_list_ops`: lower TensorList ops (LSTMs) to
    /// builtins instead of Flex ops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub _experimental_lower_tensor_list_ops: Option<bool>,
    /// `converter.unfold_batchmatmul`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfold_batchmatmul: Option<bool>,
    /// `converter.legalize_custom_tensor_list_ops`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legalize_custom_tensor_list_ops: Option<bool>,
    /// `converter.canonicalizing_inf_as_min_max_float`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonicalizing_inf_as_min_max_float: Option<bool>,
    /// `converter.serialize_debug_metadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialize_debug_metadata: Option<bool>,
}

/// `tf.lite.Optimize` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Optimize {
    Default,
    ExperimentalSparsity,
    OptimizeForSize,
    OptimizeForLatency,
}

/// `converter.target_spec` attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// `tf.lite.OpsSet` names; prefer `ops.flex` for `SELECT_TF_OPS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_ops: Option<Vec<OpsSet>>,
    /// dtypes weights may be stored in (`float16` for float16 quantization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_types: Option<Vec<SupportedType>>,
    /// TensorFlow ops to include beyond the default Flex allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental_select_user_tf_ops: Option<Vec<String>>,
}

/// `tf.lite.OpsSet` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(non_camel_case_types)]
pub enum OpsSet {
    #[serde(rename = "TFLITE_BUILTINS")]
    TfliteBuiltins,
    #[serde(rename = "TFLITE_BUILTINS_INT8")]
    TfliteBuiltinsInt8,
    #[serde(rename = "SELECT_TF_OPS")]
    SelectTfOps,
    #[serde(rename = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8")]
    Int16x8,
    #[serde(rename = "EXPERIMENTAL_STABLEHLO_OPS")]
    StablehloOps,
}

/// dtypes for `target_spec.supported_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SupportedType {
    Float16,
    Int8,
    Int16,
}

/// Operator policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpPolicy {
    /// Allow TensorFlow (Flex, `SELECT_TF_OPS`) ops. The plain LiteRT runtime cannot run
    /// them; the app must link the Flex delegate. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flex: Option<bool>,
    /// Allow custom ops (`allow_custom_ops`); the app must register their kernels.
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<bool>,
}

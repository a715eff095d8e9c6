"""A KerasHub preset loaded by code, as a preset from the hub is: litert cannot read its
configuration before the build, so the worker sizes the vision inputs from the loaded
preprocessor."""


def causal_lm(path):
    import keras_hub

    return keras_hub.models.CausalLM.from_preset(path)

"""Adapters that put purposeguard inside real face recognition pipelines.

Each adapter lives in its own module and imports its recognition library only when it
is first used, so `import purposeguard.integrations.<name>` works without the extra
installed and says how to install it when a function that needs it is called.

- [`purposeguard.integrations.face_recognition`][purposeguard.integrations.face_recognition]:
  the `face_recognition` package (dlib's ResNet model, 128-d encodings). Install with
  `pip install 'purposeguard[face-recognition]'` followed by
  `pip install --no-deps face-recognition`.

Other models (InsightFace, DeepFace, ONNX models) need no adapter: put
[`collects`][purposeguard.collects] on the function that returns embeddings, as the
how-to guide "Other face models" shows.
"""

__all__: list[str] = []

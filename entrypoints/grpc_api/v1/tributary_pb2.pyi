from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Accepted(_message.Message):
    __slots__ = ("operation_id", "consistency_token", "status", "reason", "rejection", "ids")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    consistency_token: str
    status: str
    reason: str
    rejection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, operation_id: _Optional[str] = ..., consistency_token: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., rejection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateDatasetRequest(_message.Message):
    __slots__ = ("name", "dimensions", "metric", "metadata_schema", "text_field", "embedder_json", "text_analysis_json", "wait", "index_json", "vectors_json")
    class MetadataSchemaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    METADATA_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_JSON_FIELD_NUMBER: _ClassVar[int]
    TEXT_ANALYSIS_JSON_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    INDEX_JSON_FIELD_NUMBER: _ClassVar[int]
    VECTORS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimensions: int
    metric: str
    metadata_schema: _containers.ScalarMap[str, str]
    text_field: str
    embedder_json: str
    text_analysis_json: str
    wait: bool
    index_json: str
    vectors_json: str
    def __init__(self, name: _Optional[str] = ..., dimensions: _Optional[int] = ..., metric: _Optional[str] = ..., metadata_schema: _Optional[_Mapping[str, str]] = ..., text_field: _Optional[str] = ..., embedder_json: _Optional[str] = ..., text_analysis_json: _Optional[str] = ..., wait: _Optional[bool] = ..., index_json: _Optional[str] = ..., vectors_json: _Optional[str] = ...) -> None: ...

class DatasetRef(_message.Message):
    __slots__ = ("dataset", "wait")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    wait: bool
    def __init__(self, dataset: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "dimensions", "metric", "metadata_schema", "text_field", "embedder_json", "status", "version", "vector_count", "created_at", "updated_at", "vectors_json")
    class MetadataSchemaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    METADATA_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VECTORS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimensions: int
    metric: str
    metadata_schema: _containers.ScalarMap[str, str]
    text_field: str
    embedder_json: str
    status: str
    version: str
    vector_count: int
    created_at: str
    updated_at: str
    vectors_json: str
    def __init__(self, name: _Optional[str] = ..., dimensions: _Optional[int] = ..., metric: _Optional[str] = ..., metadata_schema: _Optional[_Mapping[str, str]] = ..., text_field: _Optional[str] = ..., embedder_json: _Optional[str] = ..., status: _Optional[str] = ..., version: _Optional[str] = ..., vector_count: _Optional[int] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., vectors_json: _Optional[str] = ...) -> None: ...

class DatasetList(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ...) -> None: ...

class DatasetVersion(_message.Message):
    __slots__ = ("version", "time", "operations", "tags")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    version: str
    time: str
    operations: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., time: _Optional[str] = ..., operations: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class DatasetVersions(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[DatasetVersion]
    def __init__(self, versions: _Optional[_Iterable[_Union[DatasetVersion, _Mapping]]] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("id", "vector", "text", "metadata_json", "vectors", "images", "image_urls")
    class VectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    class ImagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    class ImageUrlsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URLS_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: bytes
    text: str
    metadata_json: str
    vectors: _containers.ScalarMap[str, bytes]
    images: _containers.ScalarMap[str, bytes]
    image_urls: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[bytes] = ..., text: _Optional[str] = ..., metadata_json: _Optional[str] = ..., vectors: _Optional[_Mapping[str, bytes]] = ..., images: _Optional[_Mapping[str, bytes]] = ..., image_urls: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("dataset", "records", "wait")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    records: _containers.RepeatedCompositeFieldContainer[Record]
    wait: bool
    def __init__(self, dataset: _Optional[str] = ..., records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., wait: _Optional[bool] = ...) -> None: ...

class UpsertStreamSummary(_message.Message):
    __slots__ = ("records", "operation_ids", "consistency_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    OPERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: int
    operation_ids: _containers.RepeatedScalarFieldContainer[str]
    consistency_token: str
    def __init__(self, records: _Optional[int] = ..., operation_ids: _Optional[_Iterable[str]] = ..., consistency_token: _Optional[str] = ...) -> None: ...

class DeleteVectorsRequest(_message.Message):
    __slots__ = ("dataset", "ids", "filter_json", "wait")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter_json: str
    wait: bool
    def __init__(self, dataset: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., filter_json: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class UpdateMetadataRequest(_message.Message):
    __slots__ = ("dataset", "id", "metadata_json", "replace", "wait")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    id: str
    metadata_json: str
    replace: bool
    wait: bool
    def __init__(self, dataset: _Optional[str] = ..., id: _Optional[str] = ..., metadata_json: _Optional[str] = ..., replace: _Optional[bool] = ..., wait: _Optional[bool] = ...) -> None: ...

class Consistency(_message.Message):
    __slots__ = ("level", "token", "version")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    level: str
    token: str
    version: str
    def __init__(self, level: _Optional[str] = ..., token: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class GetVectorsRequest(_message.Message):
    __slots__ = ("dataset", "ids", "include", "consistency")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    include: _containers.RepeatedScalarFieldContainer[str]
    consistency: Consistency
    def __init__(self, dataset: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., include: _Optional[_Iterable[str]] = ..., consistency: _Optional[_Union[Consistency, _Mapping]] = ...) -> None: ...

class VectorView(_message.Message):
    __slots__ = ("id", "score", "vector", "metadata_json", "text", "vectors", "images")
    class VectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    class ImagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    vector: bytes
    metadata_json: str
    text: str
    vectors: _containers.ScalarMap[str, bytes]
    images: _containers.ScalarMap[str, bytes]
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., vector: _Optional[bytes] = ..., metadata_json: _Optional[str] = ..., text: _Optional[str] = ..., vectors: _Optional[_Mapping[str, bytes]] = ..., images: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class ReadState(_message.Message):
    __slots__ = ("consistency", "version", "reflects")
    class ReflectsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REFLECTS_FIELD_NUMBER: _ClassVar[int]
    consistency: str
    version: str
    reflects: _containers.ScalarMap[str, int]
    def __init__(self, consistency: _Optional[str] = ..., version: _Optional[str] = ..., reflects: _Optional[_Mapping[str, int]] = ...) -> None: ...

class VectorsResponse(_message.Message):
    __slots__ = ("state", "results")
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    state: ReadState
    results: _containers.RepeatedCompositeFieldContainer[VectorView]
    def __init__(self, state: _Optional[_Union[ReadState, _Mapping]] = ..., results: _Optional[_Iterable[_Union[VectorView, _Mapping]]] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("vector", "text", "mode", "k", "offset", "filter_json", "score_threshold", "include", "fusion", "rrf_k", "alpha", "exact", "ef", "field", "queries", "image", "image_url")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    vector: bytes
    text: str
    mode: str
    k: int
    offset: int
    filter_json: str
    score_threshold: float
    include: _containers.RepeatedScalarFieldContainer[str]
    fusion: str
    rrf_k: int
    alpha: float
    exact: bool
    ef: int
    field: str
    queries: _containers.RepeatedCompositeFieldContainer[QueryInput]
    image: bytes
    image_url: str
    def __init__(self, vector: _Optional[bytes] = ..., text: _Optional[str] = ..., mode: _Optional[str] = ..., k: _Optional[int] = ..., offset: _Optional[int] = ..., filter_json: _Optional[str] = ..., score_threshold: _Optional[float] = ..., include: _Optional[_Iterable[str]] = ..., fusion: _Optional[str] = ..., rrf_k: _Optional[int] = ..., alpha: _Optional[float] = ..., exact: _Optional[bool] = ..., ef: _Optional[int] = ..., field: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[QueryInput, _Mapping]]] = ..., image: _Optional[bytes] = ..., image_url: _Optional[str] = ...) -> None: ...

class QueryInput(_message.Message):
    __slots__ = ("mode", "field", "vector", "text", "weight", "image", "image_url")
    MODE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    mode: str
    field: str
    vector: bytes
    text: str
    weight: float
    image: bytes
    image_url: str
    def __init__(self, mode: _Optional[str] = ..., field: _Optional[str] = ..., vector: _Optional[bytes] = ..., text: _Optional[str] = ..., weight: _Optional[float] = ..., image: _Optional[bytes] = ..., image_url: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("dataset", "query", "consistency")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    query: Query
    consistency: Consistency
    def __init__(self, dataset: _Optional[str] = ..., query: _Optional[_Union[Query, _Mapping]] = ..., consistency: _Optional[_Union[Consistency, _Mapping]] = ...) -> None: ...

class SearchPage(_message.Message):
    __slots__ = ("results", "next_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[VectorView]
    next_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[VectorView, _Mapping]]] = ..., next_offset: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("state", "page")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    state: ReadState
    page: SearchPage
    def __init__(self, state: _Optional[_Union[ReadState, _Mapping]] = ..., page: _Optional[_Union[SearchPage, _Mapping]] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("dataset", "queries", "consistency")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    queries: _containers.RepeatedCompositeFieldContainer[Query]
    consistency: Consistency
    def __init__(self, dataset: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., consistency: _Optional[_Union[Consistency, _Mapping]] = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("state", "pages")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    state: ReadState
    pages: _containers.RepeatedCompositeFieldContainer[SearchPage]
    def __init__(self, state: _Optional[_Union[ReadState, _Mapping]] = ..., pages: _Optional[_Iterable[_Union[SearchPage, _Mapping]]] = ...) -> None: ...

class OperationRef(_message.Message):
    __slots__ = ("operation_id", "timeout_s")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    timeout_s: float
    def __init__(self, operation_id: _Optional[str] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("id", "dataset", "command_type", "status", "reason", "rejection", "consistency_token", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COMMAND_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    dataset: str
    command_type: str
    status: str
    reason: str
    rejection: str
    consistency_token: str
    created_at: str
    updated_at: str
    def __init__(self, id: _Optional[str] = ..., dataset: _Optional[str] = ..., command_type: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., rejection: _Optional[str] = ..., consistency_token: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class CreateSnapshotRequest(_message.Message):
    __slots__ = ("dataset", "keep_last", "max_age_days", "wait")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KEEP_LAST_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_DAYS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    keep_last: int
    max_age_days: float
    wait: bool
    def __init__(self, dataset: _Optional[str] = ..., keep_last: _Optional[int] = ..., max_age_days: _Optional[float] = ..., wait: _Optional[bool] = ...) -> None: ...

class SnapshotRef(_message.Message):
    __slots__ = ("dataset", "snapshot_id", "wait")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    snapshot_id: str
    wait: bool
    def __init__(self, dataset: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class RestoreSnapshotRequest(_message.Message):
    __slots__ = ("dataset", "snapshot_id", "target", "wait")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    snapshot_id: str
    target: str
    wait: bool
    def __init__(self, dataset: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., target: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("snapshot_id", "dataset", "version", "vector_count", "dimensions", "metric", "created_at", "size_bytes", "encrypted")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    dataset: str
    version: str
    vector_count: int
    dimensions: int
    metric: str
    created_at: str
    size_bytes: int
    encrypted: bool
    def __init__(self, snapshot_id: _Optional[str] = ..., dataset: _Optional[str] = ..., version: _Optional[str] = ..., vector_count: _Optional[int] = ..., dimensions: _Optional[int] = ..., metric: _Optional[str] = ..., created_at: _Optional[str] = ..., size_bytes: _Optional[int] = ..., encrypted: _Optional[bool] = ...) -> None: ...

class SnapshotList(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[Snapshot]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[Snapshot, _Mapping]]] = ...) -> None: ...

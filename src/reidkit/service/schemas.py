"""The API's JSON shapes as pydantic models: they write the OpenAPI spec (``/api/v1/openapi.json``) that clients
and the fuzz test read, and FastAPI checks every response against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from reidkit.service.audit import AuditEntry


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Counts(BaseModel):
    videos: int
    tracks: int
    detections: int
    cameras: int


class Health(BaseModel):
    """Without a token only ``status``."""

    status: str
    version: str | None = None
    model_id: str | None = None
    counts: Counts | None = None


class Me(BaseModel):
    token_id: int
    name: str
    role: str


class QueryInfo(BaseModel):
    kind: str
    source: str
    box: list[float] | None
    track_id: int | None


class AttributeValue(BaseModel):
    value: str
    confidence: float


class HitModel(BaseModel):
    rank: int
    score: float
    track_score: float
    rerank_distance: float | None
    track_id: int
    detection_id: int
    camera: str
    video_id: int
    time: str | None
    time_s: float
    frame_index: int
    box: list[float]
    first_seen: str | None
    last_seen: str | None
    first_time_s: float
    last_time_s: float
    num_crops: int
    crop_url: str
    frame_url: str
    track_url: str
    person_id: int | None = Field(description="the person the store's clustering put the track with")
    person_confidence: float | None
    person_url: str | None
    description_probability: float | None = Field(
        description="the track's probability of the searched description (searches with a description)")
    attributes: dict[str, AttributeValue] | None = Field(
        description="the track's most probable attribute values, where the store's model predicts attributes")


class VisitModel(BaseModel):
    camera: str
    video_id: int
    first_seen: str | None
    last_seen: str | None
    first_time_s: float
    last_time_s: float
    duration_s: float
    sightings: int
    crops: int
    best_score: float
    track_ids: list[int]
    confidence: float | None = Field(description="how sure the stay is the person's (identity trajectories)")


class SearchResponse(BaseModel):
    query: QueryInfo
    model_id: str
    candidates: int
    reranked: bool
    person_id: int | None = Field(description="the query's person, when the trajectory is built from identities")
    trajectory_from: Literal["identity", "hits"]
    hits: list[HitModel]
    trajectory: list[VisitModel]
    notes: list[str]


class TrackInfo(BaseModel):
    id: int
    camera: str
    video_id: int
    first_seen: str | None
    last_seen: str | None
    first_time_s: float
    last_time_s: float
    num_crops: int


class TrackCrop(BaseModel):
    id: int
    frame_index: int
    time: str | None
    time_s: float
    box: list[float]
    score: float
    crop_url: str
    frame_url: str


class TrackResponse(BaseModel):
    track: TrackInfo
    detections: list[TrackCrop]


class PersonSummary(BaseModel):
    id: int
    confidence: float
    tracks: int
    cameras: list[str]
    first_seen: str | None
    last_seen: str | None
    person_url: str


class ClusteringModel(BaseModel):
    model_id: str
    method: str
    params: dict[str, Any]
    created_at: str
    unclustered_tracks: int = Field(description="tracks ingested since the clustering ran: in no person yet")


class PeopleResponse(BaseModel):
    clustering: ClusteringModel | None = Field(description="null: the store has not been clustered")
    people: list[PersonSummary]


class PersonTrack(TrackInfo):
    confidence: float
    track_url: str


class PersonResponse(BaseModel):
    person: PersonSummary
    tracks: list[PersonTrack]
    trajectory: list[VisitModel]
    notes: list[str]


class CameraModel(BaseModel):
    name: str
    videos: int
    tracks: int


class CamerasResponse(BaseModel):
    cameras: list[CameraModel]


class AttributeGroupModel(BaseModel):
    name: str
    values: list[str]
    question: str


class AttributesResponse(BaseModel):
    schema_name: str | None = Field(description="the store's attribute schema; null: the store holds no attributes")
    groups: list[AttributeGroupModel]


class VideoModel(BaseModel):
    id: int
    camera: str
    file: str
    status: str
    start_time: str | None
    fps: float
    width: int
    height: int
    start_frame: int
    end_frame: int
    every_n: int
    last_committed_frame: int


class VideosResponse(BaseModel):
    videos: list[VideoModel]


class AuditResponse(BaseModel):
    entries: list[AuditEntry]  # the log's own row type: pydantic reads a dataclass's fields for the spec
    next_before_id: int | None


class JobOptionsModel(BaseModel):
    every: int
    start_frame: int
    end_frame: int | None
    chunk_frames: int


class JobProgress(BaseModel):
    frames_done: int
    frames_total: int | None
    fraction: float | None


class JobModel(BaseModel):
    id: int
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    phase: Literal["queued", "loading", "ingesting", "ended"]
    file: str
    camera: str
    start_time: str | None
    options: JobOptionsModel
    progress: JobProgress
    video_id: int | None
    message: str
    created_at: str
    updated_at: str


class JobsResponse(BaseModel):
    jobs: list[JobModel]


class DeletedVideoModel(BaseModel):
    id: int
    camera: str
    file: str
    footage_end: str
    dated_by: str
    tracks: int
    detections: int
    file_deleted: bool


class PurgeRequest(BaseModel):
    before: str = Field(max_length=64, description="delete videos whose footage ended before this ISO 8601 time (UTC)")
    dry_run: bool = Field(False, description="only report what would be deleted")


class PurgeResponse(BaseModel):
    before: str
    dry_run: bool
    videos: list[DeletedVideoModel]
    tracks: int
    detections: int

"""The face stage: find every face at any size, follow it through the clip, and cut canonical
crops from the source's own pixels.

- `detect`: MediaPipe BlazeFace (full range), whole frame and tiles for small faces;
- `profile`: dlib's CNN face detector, for the turned faces BlazeFace gives up on;
- `mesh`: MediaPipe FaceMesh, 468 points per face, tracking between detections;
- `track`: face tracks over a clip (detection schedule, shot cuts, lost, revived and held
  faces, why frames have none);
- `pose`: yaw, pitch, roll and pose-free landmarks (Procrustes to a mean frontal face);
- `crops`: the canonical face and mouth crops every statistic and the sync model use;
- `identity`: dlib's ResNet face descriptor, for identity consistency and the reference CSIM.
"""

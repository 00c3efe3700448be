// GENERATED from assay/protocol.py by `python -m assay.dashboard.protocol_js --write`: do not edit.
// The protocol's vocabulary (statuses, event types, SSE events, commands, policies, defaults).

export const WorkflowStatus = Object.freeze({ PENDING: "PENDING", RUNNING: "RUNNING", WAITING: "WAITING", COMPLETED: "COMPLETED", FAILED: "FAILED", CANCELLED: "CANCELLED", TIMED_OUT: "TIMED_OUT" });
export const ActivityStatus = Object.freeze({ PENDING: "PENDING", RUNNING: "RUNNING", COMPLETED: "COMPLETED", FAILED: "FAILED", CANCELLED: "CANCELLED" });
export const EventType = Object.freeze({ WorkflowStarted: "WorkflowStarted", WorkflowCompleted: "WorkflowCompleted", WorkflowFailed: "WorkflowFailed", WorkflowCancelled: "WorkflowCancelled", WorkflowCancelRequested: "WorkflowCancelRequested", WorkflowAwaitingSignal: "WorkflowAwaitingSignal", ActivityScheduled: "ActivityScheduled", ActivityCompleted: "ActivityCompleted", ActivityFailed: "ActivityFailed", TimerScheduled: "TimerScheduled", TimerFired: "TimerFired", SignalReceived: "SignalReceived", SideEffectRecorded: "SideEffectRecorded", ChildWorkflowStarted: "ChildWorkflowStarted", ChildWorkflowCompleted: "ChildWorkflowCompleted", ChildWorkflowFailed: "ChildWorkflowFailed", VersionMarkerRecorded: "VersionMarkerRecorded" });
export const SseEvent = Object.freeze({ workflow_started: "workflow_started", workflow_running: "workflow_running", workflow_completed: "workflow_completed", workflow_failed: "workflow_failed", workflow_cancelled: "workflow_cancelled", workflow_terminated: "workflow_terminated", signal_received: "signal_received", task_completed: "task_completed", task_failed: "task_failed", schedule_triggered: "schedule_triggered", workflow_stuck: "workflow_stuck" });
export const CommandType = Object.freeze({ ScheduleActivity: "ScheduleActivity", ScheduleTimer: "ScheduleTimer", WaitForSignal: "WaitForSignal", RecordSideEffect: "RecordSideEffect", StartChildWorkflow: "StartChildWorkflow", UpsertSearchAttributes: "UpsertSearchAttributes", ContinueAsNew: "ContinueAsNew", RecordSnapshot: "RecordSnapshot", CompleteWorkflow: "CompleteWorkflow", FailWorkflow: "FailWorkflow", CancelWorkflow: "CancelWorkflow", RecordVersion: "RecordVersion" });
export const TaskKind = Object.freeze({ workflow_task: "workflow_task", activity_task: "activity_task" });
export const OverlapPolicy = Object.freeze({ skip: "skip", queue: "queue", cancel_old: "cancel_old", allow_all: "allow_all" });

export const TERMINAL_STATUSES = Object.freeze(["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]);
export const TERMINAL_EVENTS = Object.freeze(["WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled"]);
export const TERMINAL_SSE_EVENTS = Object.freeze(["workflow_completed", "workflow_failed", "workflow_cancelled", "workflow_terminated"]);
export const DEFAULT_NAMESPACE = "main";
export const DEFAULT_TASK_QUEUE = "default";
export const DEFAULT_OVERLAP_POLICY = "skip";
